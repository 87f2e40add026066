fn main() {
    std::process::exit(factorybench::cli::main());
}
