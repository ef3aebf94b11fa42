//! A small dashboard-state program: each user keeps a dashboard layout and a few
//! widget settings in their own bucket. Run: `cargo run -p dashboard-example -- DIR`.

use std::error::Error;

use serde::{Deserialize, Serialize};
use state_core::Store;
use state_service::StateService;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Layout {
    columns: u32,
    widgets: Vec<String>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "state-data".to_string());
    let store = Store::open(&dir)?;

    // Each user has a bucket of their own.
    let alice = store.bucket("alice")?;
    let layout = Layout {
        columns: 3,
        widgets: vec!["clock".into(), "weather".into(), "lights".into()],
    };
    alice.set_json("layout", &layout)?;
    alice.set_multiple([
        ("widget/clock", &b"24h"[..]),
        ("widget/lights", b"living-room"),
        ("widget/weather", b"celsius"),
    ])?;
    let visits = alice
        .get("visits")?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    alice.set("visits", visits.to_string())?;

    let back: Option<Layout> = alice.get_json("layout")?;
    println!("alice's layout: {back:?} (visit #{visits})");

    // Walk the widget settings with a cursor, in key order.
    let mut cursor = alice.cursor()?;
    let mut entry = cursor.seek("widget/")?;
    while let Some((key, value)) = entry {
        if !key.starts_with("widget/") {
            break;
        }
        println!("  {key} = {}", String::from_utf8_lossy(&value));
        entry = cursor.next()?;
    }

    // The same data through the original state service's JSON messages.
    let service = StateService::new(store.clone());
    service.handle("bob", "set", r#"{"key":"theme","value":"ZGFyaw=="}"#)?;
    println!(
        "bob's theme via the service: {}",
        service.handle("bob", "get", r#"{"key":"theme"}"#)?
    );

    let info = store.info()?;
    println!(
        "store {}: engine {}, {} buckets, {} records, {} bytes on disk",
        info.path.display(),
        info.engine,
        info.buckets,
        info.records,
        info.disk_bytes
    );
    store.close()?;
    Ok(())
}
