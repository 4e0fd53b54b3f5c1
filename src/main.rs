fn main() {
    std::process::exit(blast::main_with_args(std::env::args_os()));
}
