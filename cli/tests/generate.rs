//! `state generate DIR` (hidden): man pages and completions from the clap definition.

mod common;

use common::Env;

#[test]
fn generate_writes_man_pages_and_completions_that_match_the_commands() {
    let env = Env::new();
    let out = env.ok(&["generate", "gen"]);
    let dir = env.file("gen");
    let read =
        |rel: &str| std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));

    let main = read("man1/state.1");
    assert!(main.contains(".TH state 1"), "not a section-1 page: {main}");
    // Every visible subcommand is listed and has its own page; the hidden one has not.
    for sub in [
        "get", "set", "dump", "load", "check", "compact", "serve", "client",
    ] {
        assert!(
            main.contains(&format!("state\\-{sub}(1)")),
            "{sub} missing from state.1"
        );
        let page = read(&format!("man1/state-{sub}.1"));
        assert!(page.contains(&format!(".TH state-{sub} 1")), "{page}");
    }
    assert!(read("man1/state-serve.1").contains("max\\-connections"));
    assert!(read("man1/state-client-add.1").contains("max\\-records"));
    assert!(!dir.join("man1/state-generate.1").exists());
    assert!(
        !main.contains("generate"),
        "the hidden subcommand is documented"
    );

    let bash = read("completions/state");
    assert!(
        bash.contains("complete -F _state") && bash.contains("serve"),
        "{bash}"
    );
    assert!(read("completions/_state").starts_with("#compdef state"));
    assert!(read("completions/state.fish").contains("complete -c state"));

    // It says what it wrote, one path a line.
    assert_eq!(
        out.lines().count(),
        std::fs::read_dir(dir.join("man1")).unwrap().count() + 3
    );
}
