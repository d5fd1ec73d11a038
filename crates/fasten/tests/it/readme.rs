//! The README shows the service a newcomer copies; these keep it the code
//! that CI builds and runs (`scripts/readme-service.sh`).

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap()
}

/// The fenced block of `lang` that follows `after` in the README.
fn block_after(readme: &str, after: &str, lang: &str) -> String {
    let start = readme
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} in the README"));
    let fence = format!("```{lang}\n");
    let open = start + readme[start..].find(&fence).unwrap() + fence.len();
    let close = open + readme[open..].find("```\n").unwrap();
    readme[open..close].to_owned()
}

#[test]
fn the_readme_service_is_the_example_ci_runs() {
    let shown = block_after(&readme(), "`src/main.rs` (this is", "rust");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/service.rs"))
            .unwrap();
    assert_eq!(shown, example);
}

#[test]
fn the_readme_code_file_is_the_one_the_example_loads() {
    let shown = block_after(&readme(), "`codes/shop.codes.yaml`", "yaml");
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/codes/shop.codes.yaml"
    ))
    .unwrap();
    let without_comments: String = file
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(shown, without_comments);
    fasten::code::Registry::new()
        .load_str("shop.codes.yaml", &shown)
        .expect("the README's code file loads");
}
