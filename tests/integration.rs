//! Lennonnet's one integration-test binary: runs the built `lennonnet` against temporary
//! folders and, for later stages, a local mirror on loopback. Never touches the real network.

mod integration {
    pub mod cli;
    pub mod drills;
    pub mod e2e;
    pub mod engines;
    pub mod eval;
    pub mod hostile;
    pub mod plan;
    pub mod report;
    pub mod review;
    pub mod scrape;
    pub mod snapshot;
    pub mod store;
    pub mod torn;
    pub mod train;
    pub mod util;
}
