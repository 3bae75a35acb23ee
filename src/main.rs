fn main() {
    let path = std::env::args().nth(1).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    match runbook::yaml::decode(std::path::Path::new(&path), bytes) {
        Err(d) => print!("{}", d.render(false)),
        Ok(src) => match runbook::yaml::parse(&src) {
            Ok(n) => println!("{:?}", n),
            Err(d) => print!("{}", d.render(false)),
        },
    }
}
