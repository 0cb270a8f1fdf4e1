fn main() {
    std::process::exit(consort::cli::run());
}
