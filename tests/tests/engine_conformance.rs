//! The engine conformance suite, once per engine: `sim_engine::*` and `rocks_engine::*`.

use ferrokv_sim::{SimDisk, SimEngine};
use ferrokv_tests::conformance::EngineFixture;

/// A SimEngine on its own simulated disk; reopen is a clean close and open.
struct SimFixture {
    disk: SimDisk,
    engine: SimEngine,
}

impl EngineFixture for SimFixture {
    type Engine = SimEngine;

    fn create() -> Self {
        let disk = SimDisk::new();
        let engine = SimEngine::open(&disk).expect("open sim engine");
        SimFixture { disk, engine }
    }

    fn engine(&self) -> SimEngine {
        self.engine.clone()
    }

    fn reopen(&mut self) {
        self.engine = SimEngine::open(&self.disk).expect("reopen sim engine");
    }
}

mod sim_engine {
    ferrokv_tests::engine_conformance_tests!(super::SimFixture);
}

#[cfg(not(madsim))]
mod rocks {
    use ferrokv_server::io::RocksEngine;
    use ferrokv_tests::conformance::EngineFixture;

    /// A RocksDB in a temporary directory; reopen closes the database and opens it again.
    pub struct RocksFixture {
        dir: tempfile::TempDir,
        engine: Option<RocksEngine>,
    }

    impl EngineFixture for RocksFixture {
        type Engine = RocksEngine;

        fn create() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let engine = RocksEngine::open(dir.path()).expect("open rocksdb");
            RocksFixture {
                dir,
                engine: Some(engine),
            }
        }

        fn engine(&self) -> RocksEngine {
            self.engine.clone().expect("engine is open")
        }

        fn reopen(&mut self) {
            drop(self.engine.take());
            self.engine = Some(RocksEngine::open(self.dir.path()).expect("reopen rocksdb"));
        }
    }
}

#[cfg(not(madsim))]
mod rocks_engine {
    ferrokv_tests::engine_conformance_tests!(super::rocks::RocksFixture);
}
