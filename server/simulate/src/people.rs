//! Generated people who could be real: household heads of working age and older, spouses of
//! the other sex and a similar age, children born when their parent was an adult, parents a
//! generation older; both sexes; names from common surnames and given names. Shared by the
//! seeder and the field simulator, each with its own random numbers (`roll(lo, hi)` draws
//! uniformly from `lo..=hi`).

use chrono::{Datelike, NaiveDate};

use taizhang_core::domain::{IdNumber, Sex};

/// A person's place in the household, age and sex, before they get a name and a number.
#[derive(Debug, Clone, Copy)]
pub struct Drawn {
    pub relation: &'static str,
    pub age: u32,
    pub sex: Sex,
}

fn sex_of(roll: &mut impl FnMut(u32, u32) -> u32, male_percent: u32) -> Sex {
    if roll(1, 100) <= male_percent {
        Sex::Male
    } else {
        Sex::Female
    }
}

/// A household head: mostly men (as registered in the villages), aged 28 to 80, most of them
/// between 40 and 65.
pub fn head(roll: &mut impl FnMut(u32, u32) -> u32) -> Drawn {
    let age = match roll(1, 10) {
        1..=2 => roll(28, 39),
        3..=8 => roll(40, 65),
        _ => roll(66, 80),
    };
    Drawn {
        relation: "head",
        age,
        sex: sex_of(roll, 82),
    }
}

/// A relative of `head`, as `relation` asks when the ages allow it; otherwise a child.
pub fn relative(
    relation: &'static str,
    head: &Drawn,
    roll: &mut impl FnMut(u32, u32) -> u32,
) -> Drawn {
    let child = |roll: &mut dyn FnMut(u32, u32) -> u32| {
        let gap = roll(20, 36.min(head.age.max(20)));
        head.age.saturating_sub(gap)
    };
    let (relation, age) = match relation {
        "spouse" => {
            let age = (head.age + roll(0, 8)).saturating_sub(4).max(20);
            return Drawn {
                relation,
                age,
                sex: if head.sex == Sex::Male {
                    Sex::Female
                } else {
                    Sex::Male
                },
            };
        }
        "parent" if head.age + 20 <= 92 => ("parent", head.age + roll(20, 30.min(92 - head.age))),
        "grandchild" if head.age >= 42 => ("grandchild", head.age - roll(42, 60.min(head.age))),
        _ => ("child", child(roll)),
    };
    Drawn {
        relation,
        age,
        sex: sex_of(roll, 52),
    }
}

/// The ID number of a person drawn as of `on`: born `age` years before it, never after it.
pub fn id_number(
    region: &str,
    drawn: &Drawn,
    on: NaiveDate,
    counter: u64,
) -> anyhow::Result<IdNumber> {
    let number = |year: i32| {
        IdNumber::generated(region, year, drawn.sex, counter)
            .map_err(|e| anyhow::anyhow!("generated ID number: {}", e.message))
    };
    let id = number(on.year() - drawn.age as i32)?;
    if id.birth_date() > on {
        return number(on.year() - drawn.age as i32 - 1);
    }
    Ok(id)
}

/// Common surnames, most frequent first.
pub const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "程", "曹",
    "袁", "邓", "许", "傅", "沈", "曾", "彭", "吕",
];

/// Given names as people of the villages carry them.
pub const MALE_GIVEN: &[&str] = &[
    "国强", "建华", "志明", "海峰", "春生", "德福", "宝山", "长林", "志强", "文军", "建国", "国华",
    "伟", "强", "磊", "军", "勇", "涛", "明", "刚", "立新", "永利", "振东", "树林", "福才", "金龙",
];
pub const FEMALE_GIVEN: &[&str] = &[
    "秀兰", "桂英", "玉珍", "丽娟", "淑芬", "秀英", "玉兰", "淑珍", "凤兰", "海燕", "雪梅", "丽",
    "芳", "娜", "敏", "静", "艳", "娟", "霞", "平", "春梅", "桂芝", "秀云", "晓红", "玉霞", "红梅",
];

/// A name for someone of `sex`: the surname given (a child's is the father's) or drawn.
pub fn name(sex: Sex, surname: Option<&str>, roll: &mut impl FnMut(u32, u32) -> u32) -> String {
    let mut pick = |list: &[&'static str]| list[roll(0, list.len() as u32 - 1) as usize];
    let surname = surname.map_or_else(|| pick(SURNAMES).to_owned(), str::to_owned);
    let given = pick(if sex == Sex::Male {
        MALE_GIVEN
    } else {
        FEMALE_GIVEN
    });
    format!("{surname}{given}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roller(seed: u64) -> impl FnMut(u32, u32) -> u32 {
        let mut state = seed;
        move |lo, hi| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + ((state >> 33) % u64::from(hi - lo + 1)) as u32
        }
    }

    #[test]
    fn relatives_fit_their_relation() {
        let mut roll = roller(7);
        let on = NaiveDate::from_ymd_opt(2026, 12, 3).expect("date");
        let (mut men, mut women) = (0, 0);
        for i in 0..5000u64 {
            let head = head(&mut roll);
            assert!((28..=80).contains(&head.age));
            for relation in ["spouse", "child", "parent", "grandchild"] {
                let r = relative(relation, &head, &mut roll);
                match r.relation {
                    "spouse" => assert_ne!(r.sex, head.sex),
                    "child" => assert!(head.age >= r.age + 20, "{head:?} {r:?}"),
                    "parent" => assert!(r.age >= head.age + 20 && r.age <= 92, "{head:?} {r:?}"),
                    "grandchild" => assert!(head.age >= r.age + 42, "{head:?} {r:?}"),
                    other => panic!("{other}"),
                }
                let id = id_number("220802", &r, on, i * 5).expect("id");
                assert!(id.birth_date() <= on);
                assert_eq!(id.sex(), r.sex);
                if r.sex == Sex::Male {
                    men += 1
                } else {
                    women += 1
                }
            }
        }
        let share = f64::from(men) / f64::from(men + women);
        assert!((0.4..0.6).contains(&share), "{men} men, {women} women");
    }
}
