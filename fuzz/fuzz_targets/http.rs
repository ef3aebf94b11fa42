#![no_main]
#[path = "../checks/http.rs"]
mod check;
#[allow(dead_code)]
#[path = "../checks/support.rs"]
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
