//! The `payhub` command: parses the command line and hands over to the library.

/// mimalloc instead of the system allocator: a request allocates and frees many small buffers across threads
/// (HTTP, JSON, SQL arguments), where glibc's malloc cost about a fifth of the CPU time in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    payhub::cli::main()
}
