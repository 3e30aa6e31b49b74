//! The employer registry (SPEC §3): leading enterprises (龙头企业), cooperatives (合作社) and
//! poverty-alleviation workshops (扶贫车间). The city imports and edits it ([`service`],
//! [`import`]); a labourer's employment may name one, checked against it
//! ([`service::check_references`]); the ledger counts the labourers each employs ([`ledger`]).

pub mod import;
pub mod ledger;
pub mod service;
