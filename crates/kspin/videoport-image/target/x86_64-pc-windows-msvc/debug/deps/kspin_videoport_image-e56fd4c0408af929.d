/work/wt/trial/crates/kspin/videoport-image/target/x86_64-pc-windows-msvc/debug/deps/kspin_videoport_image-e56fd4c0408af929.d: src/lib.rs

/work/wt/trial/crates/kspin/videoport-image/target/x86_64-pc-windows-msvc/debug/deps/libkspin_videoport_image-e56fd4c0408af929.rmeta: src/lib.rs

src/lib.rs:
