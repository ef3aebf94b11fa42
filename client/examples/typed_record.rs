//! The original state service's example, over `state serve`: a typed record Put,
//! then Get (`stateClient.Put("mykey", &myRecord)` / `stateClient.Get("mykey",
//! &myRecord)`).
//!
//! Run: `cargo run -p state-client --example typed_record -- [URL]`; without a URL
//! it connects to the default store's socket (`$STATE_STORE/state.sock`, else
//! `./state-data/state.sock`) of a running `state serve`.

use serde::{Deserialize, Serialize};

/// MyData can be a struct or a native type.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct MyData {
    name: String,
    columns: u32,
    widgets: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The one line that differs from the embedded program
    // (`let b = Store::open(dir)?.bucket("user1")?;`).
    let b = match std::env::args().nth(1) {
        Some(url) => state_client::connect(&url)?,
        None => state_client::connect_default()?,
    };

    // write record
    let my_record = MyData {
        name: "dashboard".into(),
        columns: 3,
        widgets: vec!["clock".into(), "weather".into()],
    };
    b.set_json("mykey", &my_record)?;

    // read record
    let found: Option<MyData> = b.get_json("mykey")?;
    assert_eq!(found.as_ref(), Some(&my_record));
    println!(
        "typed_record: put then got {:?} from {}",
        found,
        b.endpoint()
    );
    Ok(())
}
