pub mod mpmc;
