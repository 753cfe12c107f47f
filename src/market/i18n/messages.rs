//! The rules' own messages (field errors, upload refusals, quotas) in Swahili. The rules write
//! English, which the JSON API answers as it is; a page in Swahili matches each message to a
//! pattern here: `{0}`, `{1}`… stand for the varying parts, which are themselves translated
//! when they are a message of this table (a quota's hint, an expected format) and otherwise
//! kept (numbers, file names). `tests.rs` makes sure every message the sources write has a
//! pattern.

/// (English pattern, Swahili pattern).
pub const MESSAGES: &[(&str, &str)] = &[
    // market::text, product, money, phone
    ("is required", "inahitajika"),
    (
        "needs at least {0} characters",
        "inahitaji herufi {0} au zaidi",
    ),
    ("is longer than {0} characters", "ina herufi zaidi ya {0}"),
    (
        "contains control characters",
        "ina herufi za udhibiti zisizoruhusiwa",
    ),
    (
        "contains invisible formatting characters (bidi controls or zero-width): remove them",
        "ina herufi za mpangilio zisizoonekana (za mwelekeo au zisizo na upana): ziondoe",
    ),
    (
        "must be an email address such as jane@example.co.ke",
        "lazima iwe anwani ya barua pepe kama jane@example.co.ke",
    ),
    (
        "must be a phone number such as 0712 345 678 or +254712345678",
        "lazima iwe namba ya simu kama 0712 345 678 au +254712345678",
    ),
    (
        "a Kenyan number has 9 digits after +254 (e.g. +254712345678)",
        "namba ya Kenya ina tarakimu 9 baada ya +254 (mfano +254712345678)",
    ),
    ("cannot be negative", "haiwezi kuwa chini ya sifuri"),
    (
        "must be a number such as 4500 or 4,500.50",
        "lazima iwe namba kama 4500 au 4,500.50",
    ),
    ("has at most two decimals", "inaruhusu desimali mbili tu"),
    ("is too large", "ni kubwa mno"),
    (
        "must be a whole number, 0 or more",
        "lazima iwe namba kamili, 0 au zaidi",
    ),
    (
        "must be from 0 to {0} minor units",
        "lazima iwe kati ya 0 na {0} (senti)",
    ),
    (
        "must be a 3-letter code such as KES",
        "lazima iwe msimbo wa herufi 3 kama KES",
    ),
    // web forms
    (
        "is taken by another shop",
        "tayari linatumiwa na duka lingine",
    ),
    (
        "must be a web address starting with https://",
        "lazima iwe anwani ya tovuti inayoanza na https://",
    ),
    ("is not one of the categories", "si mojawapo ya makundi"),
    (
        "could not be checked; try again",
        "haikuweza kukaguliwa; jaribu tena",
    ),
    ("is not right", "si sahihi"),
    (
        "does not match the new password",
        "hailingani na nenosiri jipya",
    ),
    // the JSON API (answered in Swahili when Accept-Language asks)
    (
        "is required, 1 to 100 characters",
        "inahitajika, herufi 1 hadi 100",
    ),
    ("is not a known category slug", "si kundi linalojulikana"),
    ("is already taken", "tayari imechukuliwa"),
    ("must be {0}", "lazima iwe {0}"),
    (
        "a whole number from 1 to {0}",
        "namba kamili kati ya 1 na {0}",
    ),
    (
        "a whole number of minor units, 0 or more",
        "namba kamili ya senti, 0 au zaidi",
    ),
    (
        "the upload was cut off or malformed: {0}",
        "upakiaji ulikatika njiani au umeharibika",
    ),
    ("not found", "haikupatikana"),
    ("internal error", "hitilafu ya ndani ya mfumo"),
    (
        "the service is busy or restarting; try again in a moment",
        "huduma ina shughuli nyingi au inawashwa upya; jaribu tena baada ya muda mfupi",
    ),
    (
        "no such API endpoint; see /api/v1/openapi.json",
        "hakuna anwani kama hii ya API; angalia /api/v1/openapi.json",
    ),
    (
        "this endpoint does not answer that method",
        "anwani hii haijibu mbinu hiyo",
    ),
    ("the request body is too large", "ombi ni kubwa mno"),
    (
        "the request took too long",
        "ombi limechukua muda mrefu mno",
    ),
    ("the request was not understood", "ombi halikueleweka"),
    // imaging::codec::Refusal
    (
        "the file is larger than {0} MB",
        "faili ni kubwa kuliko MB {0}",
    ),
    (
        "the image is {0}×{1} pixels; the limit is {2} megapixels and {3} pixels a side",
        "picha ina pikseli {0}×{1}; kikomo ni megapikseli {2} na pikseli {3} kila upande",
    ),
    (
        "the photo is {0}×{1} pixels; search by photo takes at most {2} megapixels (limits.photo_query_megapixels): send a smaller photo",
        "picha ina pikseli {0}×{1}; kutafuta kwa picha kunakubali megapikseli {2} tu: tuma picha ndogo zaidi",
    ),
    (
        "the image needs more memory to open than the limit allows",
        "picha inahitaji kumbukumbu zaidi ya inayoruhusiwa kuifungua",
    ),
    (
        "no photo was chosen, or the file is empty",
        "hukuchagua picha, au faili ni tupu",
    ),
    (
        "the file is not a JPEG, PNG or WebP image",
        "faili si picha ya JPEG, PNG au WebP",
    ),
    (
        "the image is damaged or incomplete ({0})",
        "picha imeharibika au haijakamilika",
    ),
    (
        "a product may have at most {0} photos",
        "bidhaa inaweza kuwa na picha {0} tu",
    ),
    // market::quota::OverQuota
    (
        "this shop already has {0} products, the most a {1} seller may list (quota `limits.{2}_products` = {3}){4}",
        "duka hili tayari lina bidhaa {0}, idadi ya juu kwa muuzaji wa hali hii (kikomo `limits.{2}_products` = {3}){4}",
    ),
    (
        "this photo would bring the shop's stored photos to {0} MB, over the {1} MB a {2} seller may store (quota `limits.{3}_image_mb`; photos of deleted products count while they are kept for past orders)",
        "picha hii ingefanya picha za duka kufikia MB {0}, zaidi ya MB {1} zinazoruhusiwa kwa muuzaji wa hali hii (kikomo `limits.{3}_image_mb`; picha za bidhaa zilizofutwa huhesabiwa zikiwekwa kwa ajili ya oda za zamani)",
    ),
    (
        "; delete products or photos you no longer need",
        "; futa bidhaa au picha usizohitaji tena",
    ),
    (
        "; the allowance grows once an administrator approves the shop",
        "; kiwango kitaongezeka msimamizi akiidhinisha duka",
    ),
    // quality control's findings (market::quality, workers::quality), last: their patterns are
    // the most general
    (
        "{0} could not be checked: {1}",
        "{0} haikuweza kukaguliwa: {1}",
    ),
    ("banned words: {0}", "maneno yaliyokatazwa: {0}"),
    (
        "a phone number in the description ({0}): buyers reach you on WhatsApp",
        "namba ya simu kwenye maelezo ({0}): wanunuzi wanakufikia kwa WhatsApp",
    ),
    (
        "a link in the description ({0})",
        "kiungo kwenye maelezo ({0})",
    ),
    (
        "the name is in capitals",
        "jina limeandikwa kwa herufi kubwa tu",
    ),
    (
        "the description is in capitals",
        "maelezo yameandikwa kwa herufi kubwa tu",
    ),
    (
        "{0} repeated {1} or more times",
        "{0} limerudiwa mara {1} au zaidi",
    ),
    (
        "{0} words but only {1} different ones",
        "maneno {0} lakini {1} tu ndiyo tofauti",
    ),
    (
        "price far above the category's usual (about {0} minor units over {1} listings, robust z {2})",
        "bei iko juu sana kuliko kawaida ya kundi hili (takriban senti {0} katika matangazo {1}, z {2})",
    ),
    (
        "price far below the category's usual (about {0} minor units over {1} listings, robust z {2})",
        "bei iko chini sana kuliko kawaida ya kundi hili (takriban senti {0} katika matangazo {1}, z {2})",
    ),
    (
        "{0} is the same photo as another seller's listing #{1}",
        "{0} ni picha ileile ya tangazo #{1} la muuzaji mwingine",
    ),
    (
        "{0} looks like another seller's listing #{1} ({2} of 64 bits differ)",
        "{0} inafanana na tangazo #{1} la muuzaji mwingine (biti {2} kati ya 64 zinatofautiana)",
    ),
    (
        "{0} is {1}×{2} px; at least {3} px on the shorter side",
        "{0} ina px {1}×{2}; upande mfupi unahitaji angalau px {3}",
    ),
    (
        "{0} looks blurry (sharpness {1}, below {2})",
        "{0} inaonekana na ukungu (ukali {1}, chini ya {2})",
    ),
    ("photo {0}", "picha {0}"),
];

/// The Swahili of an English message, or `None` when no pattern matches it.
pub fn to_swahili(english: &str) -> Option<String> {
    to_swahili_depth(english, 0)
}

fn to_swahili_depth(english: &str, depth: u8) -> Option<String> {
    for (en, sw) in MESSAGES {
        if let Some(args) = matches(en, english) {
            let mut out = (*sw).to_owned();
            for (i, a) in args.iter().enumerate() {
                let a = if depth < 2 {
                    to_swahili_depth(a, depth + 1).unwrap_or_else(|| (*a).to_owned())
                } else {
                    (*a).to_owned()
                };
                out = out.replace(&format!("{{{i}}}"), &a);
            }
            return Some(out);
        }
    }
    None
}

/// The parts of `text` that stand for `{0}`, `{1}`… of `pattern`, when it matches.
pub fn matches<'t>(pattern: &str, text: &'t str) -> Option<Vec<&'t str>> {
    // Split the pattern into literal pieces around `{n}`.
    let mut pieces: Vec<&str> = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}')? + open;
        if !rest[open + 1..close].bytes().all(|b| b.is_ascii_digit()) || close == open + 1 {
            // Not a placeholder: keep scanning after it as literal text.
            pieces.push(&rest[..=open]);
            rest = &rest[open + 1..];
            continue;
        }
        pieces.push(&rest[..open]);
        rest = &rest[close + 1..];
    }
    pieces.push(rest);
    // Join literal pieces that were split at a non-placeholder brace.
    if pieces.len() == 1 {
        return (pieces[0] == text).then(Vec::new);
    }
    let mut args = Vec::new();
    let first = pieces[0];
    let mut t = text.strip_prefix(first)?;
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        let last = i == pieces.len() - 1;
        if last {
            let arg = t.strip_suffix(piece)?;
            args.push(arg);
            t = "";
        } else if piece.is_empty() {
            // Two placeholders side by side: not used by any pattern.
            return None;
        } else {
            let at = t.find(piece)?;
            args.push(&t[..at]);
            t = &t[at + piece.len()..];
        }
    }
    t.is_empty().then_some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_and_fill_in() {
        assert_eq!(
            to_swahili("is longer than 120 characters").as_deref(),
            Some("ina herufi zaidi ya 120")
        );
        assert_eq!(to_swahili("is required").as_deref(), Some("inahitajika"));
        assert_eq!(
            to_swahili("must be a whole number of minor units, 0 or more").as_deref(),
            Some("lazima iwe namba kamili ya senti, 0 au zaidi")
        );
        assert_eq!(
            to_swahili(
                "the image is 9000×9000 pixels; the limit is 40 megapixels and 8000 pixels a side"
            )
            .as_deref(),
            Some(
                "picha ina pikseli 9000×9000; kikomo ni megapikseli 40 na pikseli 8000 kila upande"
            )
        );
        assert_eq!(to_swahili("something else entirely"), None);
        assert_eq!(matches("a {0} b", "a x b"), Some(vec!["x"]));
        assert_eq!(matches("a {0} b", "a x c"), None);
        assert_eq!(matches("exact", "exact"), Some(vec![]));
    }

    #[test]
    fn quota_messages_translate_with_their_hint() {
        use crate::market::quota::OverQuota;
        use crate::market::states::SellerStatus;
        for status in SellerStatus::ALL {
            let over = OverQuota::Products {
                status,
                have: 10,
                limit: 10,
            };
            let sw = to_swahili(&over.to_string()).unwrap_or_else(|| panic!("{over}"));
            assert!(sw.starts_with("duka hili tayari lina bidhaa 10"), "{sw}");
            assert!(!sw.contains("delete") && !sw.contains("allowance"), "{sw}");
            let over = OverQuota::ImageBytes {
                status,
                would: 200 * 1024 * 1024,
                limit: 100 * 1024 * 1024,
            };
            assert!(to_swahili(&over.to_string()).is_some(), "{over}");
        }
    }
}
