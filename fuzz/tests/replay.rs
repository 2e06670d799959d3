//! Every committed input of every fuzz target, run through the target's code: the seeds
//! (`seeds/<target>/`) and the inputs of fixed failures (`regressions/<target>/`). A crash that
//! fuzzing finds is fixed with its input added under `regressions/`.

use std::path::Path;

#[test]
fn every_committed_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for target in pgha_fuzz::TARGETS {
        let mut inputs = 0;
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("directory entry").path();
                let data = std::fs::read(&path).expect("input readable");
                let outcome = std::panic::catch_unwind(|| pgha_fuzz::run(target, &data));
                assert!(
                    matches!(outcome, Ok(true)),
                    "{target} failed on {} (replay with `cargo fuzz run -s none {target} {}`)",
                    path.display(),
                    path.display()
                );
                inputs += 1;
            }
        }
        assert!(
            inputs > 0,
            "no committed input for {target}: add seeds under fuzz/seeds/{target}/"
        );
    }
}

/// The list the replay (and `scripts/fuzz.sh`, through `cargo fuzz list`) goes by is every target
/// there is.
#[test]
fn every_target_file_is_listed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("fuzz_targets/")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    files.sort();
    let mut listed = pgha_fuzz::TARGETS.map(str::to_owned).to_vec();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn an_unknown_target_is_refused() {
    assert!(!pgha_fuzz::run("no_such_target", b""));
}
