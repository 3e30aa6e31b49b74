//! The page shell every console page shares, and small formatting helpers.

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::session::Session;
use crate::domain::{time, Month, Role};

/// The console's sections, in the order of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Queue,
    Duplicates,
    Attendance,
    Subsidies,
    Ledger,
    Rosters,
    Months,
    Users,
    Audit,
    Quotas,
    Calibration,
    /// The caller's own password page (reached from the name in the header, not the bar).
    Password,
}

impl Nav {
    const ALL: [Nav; 11] = [
        Nav::Queue,
        Nav::Duplicates,
        Nav::Attendance,
        Nav::Subsidies,
        Nav::Ledger,
        Nav::Rosters,
        Nav::Months,
        Nav::Quotas,
        Nav::Calibration,
        Nav::Users,
        Nav::Audit,
    ];

    /// Whether the bar shows the section to this role: the audit log is the city's; reviewers
    /// sign off their county's month, read the quotas and manage their county's field staff.
    fn shown_to(self, role: Role) -> bool {
        match self {
            Nav::Audit => role == Role::CityAdmin,
            Nav::Password => false,
            _ => true,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Nav::Queue => "审核队列",
            Nav::Duplicates => "疑似重复户",
            Nav::Attendance => "驻村考勤",
            Nav::Subsidies => "岗位补贴",
            Nav::Ledger => "需求台账",
            Nav::Rosters => "实名台账",
            Nav::Months => "月度关账",
            Nav::Users => "人员管理",
            Nav::Audit => "审计日志",
            Nav::Password => "修改密码",
            Nav::Quotas => "岗位指标",
            Nav::Calibration => "村位置校准",
        }
    }

    fn href(self) -> &'static str {
        match self {
            Nav::Queue => "/console/queue",
            Nav::Duplicates => "/console/duplicates",
            Nav::Attendance => "/console/attendance",
            Nav::Subsidies => "/console/subsidies",
            Nav::Ledger => "/console/ledger",
            Nav::Rosters => "/console/rosters",
            Nav::Months => "/console/months",
            Nav::Users => "/console/users",
            Nav::Audit => "/console/audit",
            Nav::Password => "/console/password",
            Nav::Quotas => "/console/quotas",
            Nav::Calibration => "/console/calibration",
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · 台账 审核控制台" }
            link rel="stylesheet" href="/console/static/console.css";
            script src="/console/static/console.js" defer {}
        }
    }
}

/// A page of the signed-in console.
pub fn render(session: &Session, active: Nav, title: &str, body: Markup) -> HttpResponse {
    let caller = &session.caller;
    let markup = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (head(title))
            body {
                header.top {
                    a.brand href="/console" { "台账 · 审核控制台" }
                    nav {
                        // Reviewers sign off their county's month there, and read the quotas.
                        @for item in Nav::ALL {
                            @if item.shown_to(caller.role) {
                                a href=(item.href()) class=[(item == active).then_some("active")] {
                                    (item.label())
                                }
                            }
                        }
                    }
                    div.who {
                        a.user href=(Nav::Password.href()) title="修改密码" { (caller.name) } " "
                        span.role { (caller.role.label()) }
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button.link type="submit" { "退出" }
                        }
                    }
                }
                @if let Some(flash) = &session.flash {
                    div class={ "flash " (if flash.ok { "ok" } else { "error" }) } role="status" {
                        (flash.text)
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    html_response(markup)
}

/// A page without the navigation (login, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (head(title))
            body { (body) }
        }
    }
}

pub fn html_response(markup: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// An instant as the console prints it, in China Standard Time: `2020-07-20 08:02`.
pub fn datetime(at: &DateTime<Utc>) -> String {
    time::minute(at)
}

/// The current month, `YYYY-MM`, in China Standard Time.
pub fn current_month() -> String {
    Month::current().to_string()
}

/// A hidden CSRF field for a form.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A number with thousands separators, as Chinese reports print them.
pub fn number(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A signed change, `+3`, `-2` or `0`.
pub fn change(n: i64) -> String {
    if n > 0 {
        format!("+{}", number(n))
    } else {
        number(n)
    }
}

/// Query string from pairs, leaving out empty values.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.append_pair(k, v);
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_separators() {
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1000), "1,000");
        assert_eq!(number(-1234567), "-1,234,567");
        assert_eq!(change(5), "+5");
        assert_eq!(change(-5), "-5");
    }

    #[test]
    fn query_skips_empty_values() {
        assert_eq!(
            query(&[
                ("a", Some("1")),
                ("b", None),
                ("c", Some("")),
                ("d", Some("洮北"))
            ]),
            "a=1&d=%E6%B4%AE%E5%8C%97"
        );
    }
}
