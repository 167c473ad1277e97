//! Replays the public corpus (`../shared/corpus`) through the real milter
//! protocol, with its zones served by the in-process DNS server.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_corpus_cases() {
    let Some(shared) = shared_dir() else {
        skip_without_shared("public_corpus_cases");
        return;
    };
    match common::replay::replay(&shared.join("corpus")).await {
        Ok(n) => eprintln!("{n} corpus cases passed"),
        Err(f) => panic!("{} corpus cases failed:\n{}", f.len(), f.join("\n")),
    }
}
