//! Parse each argument (or each stdin line) and print the AST or the error.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inputs: Vec<String> = if args.is_empty() {
        std::io::stdin().lines().map_while(Result::ok).collect()
    } else {
        args
    };
    for text in inputs {
        match sibyl_cql::parse_statement(&text) {
            Ok(s) => println!("{s:?}"),
            Err(e) => println!("ERROR: {e}"),
        }
    }
}
