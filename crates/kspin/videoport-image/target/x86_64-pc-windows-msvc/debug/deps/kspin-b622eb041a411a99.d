/work/wt/trial/crates/kspin/videoport-image/target/x86_64-pc-windows-msvc/debug/deps/kspin-b622eb041a411a99.d: /work/wt/trial/crates/kspin/src/lib.rs /work/wt/trial/crates/kspin/src/backend.rs /work/wt/trial/crates/kspin/src/class.rs /work/wt/trial/crates/kspin/src/level.rs /work/wt/trial/crates/kspin/src/lock.rs /work/wt/trial/crates/kspin/src/platform.rs /work/wt/trial/crates/kspin/src/scope.rs /work/wt/trial/crates/kspin/src/kernel/mod.rs /work/wt/trial/crates/kspin/src/kernel/dpc.rs /work/wt/trial/crates/kspin/src/kernel/executive.rs /work/wt/trial/crates/kspin/src/kernel/ffi.rs /work/wt/trial/crates/kspin/src/kernel/queued.rs /work/wt/trial/crates/kspin/src/kernel/videoport.rs

/work/wt/trial/crates/kspin/videoport-image/target/x86_64-pc-windows-msvc/debug/deps/libkspin-b622eb041a411a99.rmeta: /work/wt/trial/crates/kspin/src/lib.rs /work/wt/trial/crates/kspin/src/backend.rs /work/wt/trial/crates/kspin/src/class.rs /work/wt/trial/crates/kspin/src/level.rs /work/wt/trial/crates/kspin/src/lock.rs /work/wt/trial/crates/kspin/src/platform.rs /work/wt/trial/crates/kspin/src/scope.rs /work/wt/trial/crates/kspin/src/kernel/mod.rs /work/wt/trial/crates/kspin/src/kernel/dpc.rs /work/wt/trial/crates/kspin/src/kernel/executive.rs /work/wt/trial/crates/kspin/src/kernel/ffi.rs /work/wt/trial/crates/kspin/src/kernel/queued.rs /work/wt/trial/crates/kspin/src/kernel/videoport.rs

/work/wt/trial/crates/kspin/src/lib.rs:
/work/wt/trial/crates/kspin/src/backend.rs:
/work/wt/trial/crates/kspin/src/class.rs:
/work/wt/trial/crates/kspin/src/level.rs:
/work/wt/trial/crates/kspin/src/lock.rs:
/work/wt/trial/crates/kspin/src/platform.rs:
/work/wt/trial/crates/kspin/src/scope.rs:
/work/wt/trial/crates/kspin/src/kernel/mod.rs:
/work/wt/trial/crates/kspin/src/kernel/dpc.rs:
/work/wt/trial/crates/kspin/src/kernel/executive.rs:
/work/wt/trial/crates/kspin/src/kernel/ffi.rs:
/work/wt/trial/crates/kspin/src/kernel/queued.rs:
/work/wt/trial/crates/kspin/src/kernel/videoport.rs:
