#![no_main]
#[path = "../checks/memfile_snapshot.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
