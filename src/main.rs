use std::process::ExitCode;

fn main() -> ExitCode {
    soko::cli::main()
}
