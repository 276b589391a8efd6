//! The `payhub` command: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    payhub::cli::main()
}
