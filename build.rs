//! Build information compiled into the binary: `NANUM_GIT_COMMIT`, the commit it was built
//! from. Taken from the `NANUM_GIT_COMMIT` environment variable when set (the Dockerfile's
//! build argument: its context has no `.git`), else from `git rev-parse` when this crate is
//! the top of a git work tree, else `unknown` — a source tree without `.git` still builds.

use std::{path::Path, process::Command};

fn main() {
    println!("cargo::rerun-if-env-changed=NANUM_GIT_COMMIT");
    let given = std::env::var("NANUM_GIT_COMMIT").ok().map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    let commit = given.or_else(git_commit).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=NANUM_GIT_COMMIT={commit}");
}

/// `git rev-parse --short=12 HEAD`, only when the crate's own folder is the work tree's top
/// (never the commit of some repository that happens to contain a copied source tree).
fn git_commit() -> Option<String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let top = git(&manifest_dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != Path::new(&manifest_dir).canonicalize().ok()? {
        return None;
    }
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points at (a
    // commit). Only existing files: a missing one would make cargo rerun this every build.
    let branch = git(&manifest_dir, &["symbolic-ref", "-q", "HEAD"]);
    for name in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        let path = git(&manifest_dir, &["rev-parse", "--path-format=absolute", "--git-path", name]);
        if let Some(path) = path.filter(|p| Path::new(p).exists()) {
            println!("cargo::rerun-if-changed={path}");
        }
    }
    git(&manifest_dir, &["rev-parse", "--short=12", "HEAD"])
}

fn git(dir: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}
