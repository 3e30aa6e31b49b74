//! The demo employer registry: leading enterprises, cooperatives and workshops per county,
//! marked `demo`, in the notice's proportions (252, 451 and 32 in the city) scaled with the
//! seed's size. Generated members employed by one of those kinds name an employer of their
//! county, picked from their person key (so the seed's random stream is not disturbed).

use std::collections::BTreeMap;

use chrono::Utc;
use diesel::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use taizhang_core::db::schema::{divisions, employers};
use taizhang_core::db::DbConnection;
use taizhang_core::domain::{DivisionLevel, EmployerKind, EmploymentStatus};
use taizhang_core::employers::import::credit_code_with_check;
use taizhang_core::error::ApiError;

/// The city's registry in the notice (SPEC §3).
pub const CITY_TOTALS: [(EmployerKind, usize); 3] = [
    (EmployerKind::LeadingEnterprise, 252),
    (EmployerKind::Cooperative, 451),
    (EmployerKind::Workshop, 32),
];

/// Households at which the registry reaches the notice's size.
const FULL_SCALE_HOUSEHOLDS: usize = 100_000;

const BRANDS: [&str; 16] = [
    "丰收",
    "鑫源",
    "富民",
    "兴农",
    "福顺",
    "金穗",
    "绿源",
    "宏达",
    "惠农",
    "永丰",
    "瑞雪",
    "嫩江",
    "洮儿河",
    "科尔沁",
    "万宝",
    "春华",
];
const TRADES: [&str; 8] = [
    "农业", "养殖", "种植", "食品", "杂粮", "牧业", "果蔬", "农机",
];

/// The demo registry: employer ids by county and kind.
#[derive(Debug, Clone, Default)]
pub struct DemoEmployers {
    by_county: BTreeMap<(String, EmployerKind), Vec<String>>,
}

impl DemoEmployers {
    /// The employer a member of `county` employed with `status` names (none for other
    /// statuses, or when the county has no employer of the kind). `key` picks one.
    pub fn pick(
        &self,
        county: &str,
        status: Option<EmploymentStatus>,
        key: &str,
    ) -> Option<String> {
        let kind = EmployerKind::of_status(status?)?;
        let ids = self.by_county.get(&(county.to_owned(), kind))?;
        let hash = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        ids.get((hash % ids.len() as u64) as usize).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_county.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds the registry from listed employers: (id, county code, kind as on the wire).
    pub fn from_list(list: impl IntoIterator<Item = (String, String, String)>) -> Self {
        let mut out = DemoEmployers::default();
        for (id, county, kind) in list {
            if let Some(kind) = EmployerKind::parse(&kind) {
                out.by_county.entry((county, kind)).or_default().push(id);
            }
        }
        for ids in out.by_county.values_mut() {
            ids.sort();
        }
        out
    }
}

fn name(rng: &mut StdRng, county: &str, kind: EmployerKind, n: usize) -> String {
    let brand = BRANDS[rng.gen_range(0..BRANDS.len())];
    let trade = TRADES[rng.gen_range(0..TRADES.len())];
    match kind {
        EmployerKind::LeadingEnterprise => format!("{county}{brand}{trade}有限公司（{n}）"),
        EmployerKind::Cooperative => format!("{county}{brand}{trade}专业合作社（{n}）"),
        EmployerKind::Workshop => format!("{county}{brand}扶贫车间（{n}）"),
    }
}

/// The demo registry: the stored one when there is one, else generated for `households`.
pub fn ensure(
    conn: &mut DbConnection,
    households: usize,
    seed: u64,
) -> Result<DemoEmployers, ApiError> {
    let stored: Vec<(String, String, String)> = employers::table
        .filter(employers::demo.eq(true))
        .select((employers::id, employers::county_code, employers::kind))
        .load(conn)?;
    if !stored.is_empty() {
        return Ok(DemoEmployers::from_list(stored));
    }
    let counties: Vec<(String, String)> = divisions::table
        .filter(divisions::level.eq(DivisionLevel::County.as_str()))
        .order(divisions::code)
        .select((divisions::code, divisions::name))
        .load(conn)?;
    if counties.is_empty() {
        return Ok(DemoEmployers::default());
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x454d_504c_4f59);
    let now = Utc::now();
    let mut list = Vec::new();
    let scale = households.min(FULL_SCALE_HOUSEHOLDS) as f64 / FULL_SCALE_HOUSEHOLDS as f64;
    for (k, (kind, total)) in CITY_TOTALS.iter().enumerate() {
        let per_county = ((*total as f64 * scale) / counties.len() as f64)
            .ceil()
            .max(1.0) as usize;
        for (c, (code, county_name)) in counties.iter().enumerate() {
            for n in 1..=per_county {
                let id = uuid::Builder::from_random_bytes(rng.gen())
                    .into_uuid()
                    .to_string();
                let first = format!("93{}{:09}", &code[..6], (k * 1_000_000) + c * 10_000 + n);
                let credit_code = credit_code_with_check(&first);
                diesel::insert_into(employers::table)
                    .values((
                        employers::id.eq(&id),
                        employers::kind.eq(kind.as_str()),
                        employers::name.eq(name(&mut rng, county_name, *kind, n)),
                        employers::credit_code.eq(credit_code),
                        employers::county_code.eq(code),
                        employers::village_code.eq(None::<String>),
                        employers::address.eq(Some(county_name.clone())),
                        employers::active.eq(true),
                        employers::demo.eq(true),
                        employers::sync_seq.eq(0i64),
                        employers::created_at.eq(now.naive_utc()),
                        employers::updated_at.eq(now.naive_utc()),
                    ))
                    .execute(conn)?;
                taizhang_core::changes::employer(conn, &id, now)?;
                list.push((id, code.clone(), kind.as_str().to_owned()));
            }
        }
    }
    Ok(DemoEmployers::from_list(list))
}
