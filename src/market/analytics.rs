//! Analytics maths: complete daily series, conversion, an SVG bar chart, CSV. Pure functions.

/// Days since 1970-01-01 for a civil date (proleptic Gregorian; H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn parse_day(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let y = it.next()?.parse().ok()?;
    let m = it.next()?.parse().ok()?;
    let d = it.next()?.parse().ok()?;
    Some(days_from_civil(y, m, d))
}

fn format_day(z: i64) -> String {
    let (y, m, d) = civil_from_days(z);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `days` consecutive days ending at `today` (YYYY-MM-DD), zeros where nothing happened.
pub fn fill_days(known: &[(String, i64, i64)], today: &str, days: u32) -> Vec<(String, i64, i64)> {
    let Some(end) = parse_day(today) else {
        return known.to_vec();
    };
    (0..days as i64)
        .rev()
        .map(|back| {
            let day = format_day(end - back);
            known
                .iter()
                .find(|(d, _, _)| *d == day)
                .cloned()
                .unwrap_or((day, 0, 0))
        })
        .collect()
}

/// Leads ÷ views × 100, one decimal; `None` without views.
pub fn conversion(views: i64, leads: i64) -> Option<f64> {
    (views > 0).then(|| (leads as f64 * 1000.0 / views as f64).round() / 10.0)
}

/// The words of the chart, in the reader's language.
pub struct ChartWords<'a> {
    /// The chart's accessible name ("Views and leads per day").
    pub title: &'a str,
    /// "{0} views" for a day's grey bar.
    pub views: &'a str,
    /// "{0} leads" for a day's green bar.
    pub leads: &'a str,
    /// A day `2026-12-05` as the reader writes it.
    pub day: &'a (dyn Fn(&str) -> String + Sync),
}

/// Views (grey) and leads (green) per day as an inline SVG bar chart. Built from numbers only.
pub fn svg_chart(series: &[(String, i64, i64)]) -> String {
    svg_chart_with(
        series,
        &ChartWords {
            title: "Views and leads per day",
            views: "{0} views",
            leads: "{0} leads",
            day: &|d| d.to_owned(),
        },
    )
}

/// [`svg_chart`] with the words given (the text is escaped: a word can hold no markup).
pub fn svg_chart_with(series: &[(String, i64, i64)], words: &ChartWords<'_>) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let (w, h) = (600.0_f64, 160.0_f64);
    let max = series
        .iter()
        .map(|s| s.1.max(s.2))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = w / series.len().max(1) as f64;
    let bar = (slot / 2.0 - 1.0).max(1.0);
    let mut out = format!(
        "<svg viewBox=\"0 0 {w} {}\" width=\"100%\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        h + 20.0,
        esc(words.title)
    );
    for (i, (day, views, leads)) in series.iter().enumerate() {
        let x = i as f64 * slot;
        let vh = *views as f64 / max * h;
        let lh = *leads as f64 / max * h;
        let day = esc(&(words.day)(day));
        let views = esc(&words.views.replace("{0}", &views.to_string()));
        let leads = esc(&words.leads.replace("{0}", &leads.to_string()));
        out.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{vh:.1}\" fill=\"#999\"><title>{day}: {views}</title></rect>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{lh:.1}\" fill=\"#25d366\"><title>{day}: {leads}</title></rect>",
            h - vh,
            x + bar + 1.0,
            h - lh
        ));
    }
    if let (Some(first), Some(last)) = (series.first(), series.last()) {
        out.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"12\" fill=\"currentColor\">{}</text><text x=\"{w}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\" fill=\"currentColor\">{}</text>",
            h + 16.0,
            esc(&(words.day)(&first.0)),
            h + 16.0,
            esc(&(words.day)(&last.0))
        ));
    }
    out.push_str("</svg>");
    out
}

/// `day,views,leads,conversion_percent` lines with a header.
pub fn csv(series: &[(String, i64, i64)]) -> String {
    let mut out = String::from("day,views,leads,conversion_percent\n");
    for (day, views, leads) in series {
        let conv = conversion(*views, *leads)
            .map(|c| format!("{c:.1}"))
            .unwrap_or_default();
        out.push_str(&format!("{day},{views},{leads},{conv}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(
            format_day(parse_day("2026-03-01").unwrap() - 1),
            "2026-02-28"
        );
    }

    #[test]
    fn series_are_filled_with_zero_days() {
        let known = vec![("2026-11-27".to_owned(), 10, 2)];
        let filled = fill_days(&known, "2026-11-28", 3);
        assert_eq!(
            filled,
            vec![
                ("2026-11-26".to_owned(), 0, 0),
                ("2026-11-27".to_owned(), 10, 2),
                ("2026-11-28".to_owned(), 0, 0)
            ]
        );
    }

    #[test]
    fn conversion_csv_and_chart() {
        assert_eq!(conversion(0, 0), None);
        assert_eq!(conversion(3, 1), Some(33.3));
        let s = vec![("2026-11-28".to_owned(), 3, 1)];
        assert_eq!(
            csv(&s),
            "day,views,leads,conversion_percent\n2026-11-28,3,1,33.3\n"
        );
        let svg = svg_chart(&s);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>") && svg.contains("3 views"));
    }
}
