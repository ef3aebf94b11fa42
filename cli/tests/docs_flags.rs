//! Every `--flag` that README.md and docs/*.md name exists in the `state` tool: the
//! flags are read from the help of `state` and of every subcommand (found in the
//! help, recursively), so docs and flags cannot drift apart. A flag the docs give to
//! another program (`cargo test --workspace`, `valgrind --tool=...`) is known by the
//! command it follows in the same code span or code line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// Programs other than `state` whose flags the docs show in their commands.
const OTHER_PROGRAMS: &[&str] = &[
    "apt-get",
    "bench.py",
    "cargo",
    "cc",
    "curl",
    "git",
    "make",
    "maturin",
    "mypy",
    "node",
    "npm",
    "pip",
    "pkg-config",
    "pytest",
    "python",
    "python3",
    "redis-benchmark",
    "redis-cli",
    "redis-server",
    "rustup",
    "valgrind",
    "wrk",
];

/// Other programs' flags the docs name on their own, not after the program.
const OTHER_FLAGS: &[(&str, &str)] = &[
    ("--cluster-replicas", "redis-cli --cluster create"),
    ("--leak-check", "valgrind"),
    ("--now", "systemctl enable"),
    ("--system", "adduser"),
    ("--zig", "maturin build"),
    ("--host-whitelist", "etcd"),
    ("--edges", "scripts/module_graph.py"),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ is inside the repository")
        .to_path_buf()
}

fn help(args: &[&str]) -> String {
    let out = Command::cargo_bin("state")
        .unwrap()
        .env_remove("STATE_STORE")
        .args(args)
        .arg("--help")
        .assert()
        .success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

/// The long flags of `state ARGS --help` and of every subcommand below it, each with
/// the commands that have it.
fn state_flags(args: &mut Vec<String>, flags: &mut BTreeMap<String, BTreeSet<String>>) {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = help(&argv);
    let command = format!("state {}", argv.join(" ")).trim_end().to_string();
    let mut in_commands = false;
    let mut subcommands = Vec::new();
    for line in text.lines() {
        if line.ends_with(':') && !line.starts_with(' ') {
            in_commands = line == "Commands:";
            continue;
        }
        let item = line.trim_start();
        if in_commands && line.starts_with("  ") && !line.starts_with("   ") {
            match item.split_whitespace().next() {
                Some("help") | None => {}
                Some(name) => subcommands.push(name.to_string()),
            }
        }
        // Option lines: `  -s, --store <DIR>` or `      --json`.
        let item = match item.as_bytes() {
            [b'-', c, b',', b' ', ..] if *c != b'-' => &item[4..],
            _ => item,
        };
        if let Some(name) = item.strip_prefix("--") {
            let end = name
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(name.len());
            flags
                .entry(format!("--{}", &name[..end]))
                .or_default()
                .insert(command.clone());
        }
    }
    for sub in subcommands {
        args.push(sub);
        state_flags(args, flags);
        args.pop();
    }
}

/// A `--flag` the docs name, where, and the command text before it in its code
/// span or code line (`None` in prose).
#[derive(Debug)]
struct Mention {
    flag: String,
    file: String,
    line: usize,
    before: Option<String>,
}

/// Each `--name` in `text` (not part of a longer word or of `---`), with its byte offset.
fn flags_in(text: &str) -> Vec<(usize, String)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("--").map(|at| at + i) {
        i = at + 2;
        let word_before = at > 0
            && (bytes[at - 1].is_ascii_alphanumeric() || matches!(bytes[at - 1], b'-' | b'_'));
        if word_before || !bytes.get(at + 2).is_some_and(u8::is_ascii_lowercase) {
            continue;
        }
        let len = text[at + 2..]
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            .unwrap_or(text.len() - at - 2);
        let name = text[at + 2..at + 2 + len].trim_end_matches('-');
        found.push((at, format!("--{name}")));
        i = at + 2 + len;
    }
    found
}

/// The `--flag` mentions of one Markdown file. Code spans may run over line breaks
/// within a paragraph; each line of a fenced code block is a command of its own.
fn mentions(file: &str, text: &str) -> Vec<Mention> {
    let mut out = Vec::new();
    let mut fenced = false;
    // In a code block, the lines of a command so far that end in `\`.
    let mut continued = String::new();
    // The current paragraph, and the line number of each of its bytes.
    let mut para = String::new();
    let mut para_lines: Vec<usize> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim_start().starts_with("```") {
            paragraph(file, &mut para, &mut para_lines, &mut out);
            fenced = !fenced;
        } else if fenced {
            for (at, flag) in flags_in(line) {
                out.push(Mention {
                    flag,
                    file: file.to_string(),
                    line: number,
                    before: Some(format!("{continued}{}", &line[..at])),
                });
            }
            // A line ending in `\` goes on on the next one.
            match line.strip_suffix('\\') {
                Some(head) => continued.push_str(head),
                None => continued.clear(),
            }
        } else if line.trim().is_empty() {
            paragraph(file, &mut para, &mut para_lines, &mut out);
        } else {
            para.push_str(line);
            para.push('\n');
            para_lines.resize(para.len(), number);
        }
    }
    paragraph(file, &mut para, &mut para_lines, &mut out);
    out
}

/// The mentions of one paragraph (then emptied): in prose, and in code spans.
fn paragraph(file: &str, para: &mut String, lines: &mut Vec<usize>, out: &mut Vec<Mention>) {
    let mut start = 0;
    for (n, piece) in para.split('`').enumerate() {
        for (at, flag) in flags_in(piece) {
            out.push(Mention {
                flag,
                file: file.to_string(),
                line: lines[start + at],
                before: (n % 2 == 1).then(|| piece[..at].to_string()),
            });
        }
        start += piece.len() + 1;
    }
    para.clear();
    lines.clear();
}

/// The program whose command `before` (the code up to a flag) is: the first word of
/// its last command (after `|`, `;`, `&&` or `$(`), past `VAR=value` assignments,
/// without its directory.
fn program(before: &str) -> Option<&str> {
    let command = before
        .rsplit(['|', ';', '('])
        .next()
        .unwrap_or(before)
        .rsplit("&&")
        .next()
        .unwrap_or(before);
    let word = command
        .split_whitespace()
        .find(|w| !w.contains('=') && *w != "$")?;
    Some(word.rsplit('/').next().unwrap_or(word))
}

fn is_other_programs(m: &Mention) -> bool {
    if OTHER_FLAGS.iter().any(|(flag, _)| *flag == m.flag) {
        return true;
    }
    m.before
        .as_deref()
        .and_then(program)
        .is_some_and(|p| OTHER_PROGRAMS.contains(&p))
}

fn docs() -> Vec<(String, String)> {
    let root = repo();
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&root).unwrap().display().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn every_flag_the_docs_name_is_in_the_help() {
    let mut flags = BTreeMap::new();
    state_flags(&mut Vec::new(), &mut flags);
    // The walk reached the subcommands, `state serve` among them.
    assert!(
        flags.contains_key("--store") && flags.contains_key("--format"),
        "{flags:?}"
    );
    assert!(flags["--resp"].contains("state serve"), "{flags:?}");

    let mut checked = 0;
    let mut missing = Vec::new();
    for (file, text) in docs() {
        for m in mentions(&file, &text) {
            if is_other_programs(&m) {
                continue;
            }
            checked += 1;
            if !flags.contains_key(&m.flag) {
                missing.push(format!("{}:{}: {}", m.file, m.line, m.flag));
            }
        }
    }
    assert!(
        checked > 30,
        "the docs name many of the tool's flags ({checked})"
    );
    assert!(
        missing.is_empty(),
        "flags the docs name that no `state ... --help` lists (add the flag, fix the \
         docs, or if it is another program's, list it in OTHER_PROGRAMS/OTHER_FLAGS):\n{}",
        missing.join("\n")
    );
}

/// The scanner itself: what counts as a mention and whose flag it is.
#[test]
fn mentions_are_found_in_prose_spans_and_code_blocks_and_attributed() {
    let text = "Prose names --sweep-interval, not x--y or ---.\n\
                A span `valgrind --tool=callgrind\n--toggle-collect='*f*'` over two lines,\n\
                `state keys B [--prefix P]` and `$(pkg-config --cflags state) x.a`.\n\
                \n\
                ```sh\n\
                STATE_STORE=d state get b k --raw   # --json too\n\
                redis-cli -p 7379 --user u --pass T | state load --file -\n\
                valgrind --track-fds=yes \\\n\
                \x20   --error-exitcode=9 ./app\n\
                state keys b \\\n\
                \x20   --limit 3\n\
                ```\n";
    let got: Vec<(String, usize, bool)> = mentions("t.md", text)
        .iter()
        .map(|m| (m.flag.clone(), m.line, is_other_programs(m)))
        .collect();
    let want = [
        ("--sweep-interval", 1, false),
        ("--tool", 2, true),
        ("--toggle-collect", 3, true),
        ("--prefix", 4, false),
        ("--cflags", 4, true),
        ("--raw", 7, false),
        ("--json", 7, false),
        ("--user", 8, true),
        ("--pass", 8, true),
        ("--file", 8, false),
        ("--track-fds", 9, true),
        ("--error-exitcode", 10, true),
        ("--limit", 12, false),
    ];
    let want: Vec<(String, usize, bool)> = want
        .iter()
        .map(|(f, l, o)| (f.to_string(), *l, *o))
        .collect();
    assert_eq!(got, want);
}
