//! Writes the fixture store this build adds to `tests/fixtures/` (`store-v6-text`):
//! `cargo run -p strata-tests --bin write_fixture -- DIR`.

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: write_fixture DIR");
        std::process::exit(2);
    };
    if let Err(e) = strata_tests::fixtures::write_store_v6_text(std::path::Path::new(&dir)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
