//! Each documented misuse, written against kspin, must fail to compile.
//! The `.stderr` files beside each case show the error a driver author sees.
//!
//! The expected messages are those of kspin's default features (the host
//! backend). With the `kernel` feature also on, kspin has two types named
//! `Executive` and rustc spells out their paths, so the messages differ in
//! wording, not in substance; `cargo xtask test` runs this suite with the
//! default features.
#![cfg(not(feature = "kernel"))]

#[test]
fn misuses_do_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
