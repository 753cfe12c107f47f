//! The catalogue: every key with its English and its Swahili. Add a key here when a template
//! or a handler needs a new sentence (both languages, the same `{0}` `{1}` placeholders);
//! `tests.rs` fails naming any key used but missing, any empty text and any placeholder that
//! one language has and the other lacks.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

/// (key, English, Swahili)
pub const STRINGS: &[(&str, &str, &str)] = &[
    // --- the layout (base.html) and the storefront ---
    (
        "site_description",
        "Soko: buy from local sellers near you and chat with them on WhatsApp.",
        "Soko: nunua kutoka kwa wauzaji walio karibu nawe na uzungumze nao kwa WhatsApp.",
    ),
    (
        "search_placeholder",
        "Search products, sellers, cities",
        "Tafuta bidhaa, wauzaji, miji",
    ),
    ("search", "Search", "Tafuta"),
    ("photo_search", "Photo search", "Tafuta kwa picha"),
    ("photo_search_title", "Search by photo", "Tafuta kwa picha"),
    ("log_in", "Log in", "Ingia"),
    ("log_out", "Log out", "Toka"),
    ("nav_main", "Main", "Menyu kuu"),
    ("home", "Home", "Nyumbani"),
    ("watchlist", "Watchlist", "Vipendwa"),
    ("sell", "Sell", "Uza"),
    ("profile", "Profile", "Wasifu"),
    ("all", "All", "Zote"),
    ("categories", "Categories", "Makundi"),
    ("refine", "Refine", "Chuja"),
    ("fresh", "Fresh on Soko", "Mpya sokoni"),
    ("more", "More products", "Bidhaa zaidi"),
    ("in_stock_n", "{0} in stock", "Zipo {0}"),
    (
        "ask_stock",
        "Ask the seller about stock",
        "Uliza muuzaji kama bidhaa ipo",
    ),
    (
        "chat_whatsapp",
        "Chat on WhatsApp",
        "Wasiliana na muuzaji kwa WhatsApp",
    ),
    ("share", "Share link", "Shiriki kiungo"),
    ("save", "♡ Save", "♡ Hifadhi"),
    ("saved", "♥ Saved", "♥ Imehifadhiwa"),
    ("reviews", "Reviews", "Maoni"),
    ("no_reviews", "No reviews yet.", "Bado hakuna maoni."),
    ("stars", "Stars", "Nyota"),
    ("n_stars", "{0} stars", "Nyota {0}"),
    ("your_review", "Your review", "Maoni yako"),
    ("post_review", "Post review", "Tuma maoni"),
    (
        "approved_seller",
        "Approved seller",
        "Muuzaji aliyeidhinishwa",
    ),
    ("contact_price", "Contact for price", "Uliza bei"),
    (
        "empty_feed",
        "Nothing here yet. Sellers: tap Sell to list your first product.",
        "Bado hakuna kitu. Wauzaji: bonyeza Uza kuweka bidhaa yako ya kwanza.",
    ),
    (
        "search_hint",
        "Type what you are looking for: a product, a seller or a city.",
        "Andika unachotafuta: bidhaa, muuzaji au mji.",
    ),
    (
        "no_results",
        "No products match. Try fewer words, another spelling, or browse the categories.",
        "Hakuna bidhaa zinazolingana. Jaribu maneno machache, tahajia nyingine, au angalia makundi.",
    ),
    ("results_for_q", "Results for “{0}”", "Matokeo ya “{0}”"),
    ("price_up_to", "up to {0}", "hadi {0}"),
    ("price_and_up", "{0} and up", "{0} na zaidi"),
    ("your_watchlist", "Your watchlist", "Vipendwa vyako"),
    (
        "empty_watchlist",
        "Tap ♡ Save on a product to keep it here.",
        "Bonyeza ♡ Hifadhi kwenye bidhaa ili kuiweka hapa.",
    ),
    (
        "seller_empty",
        "This seller has no products on show yet.",
        "Muuzaji huyu bado hana bidhaa zinazoonyeshwa.",
    ),
    (
        "seller_summary",
        "{0} in {1} on Soko",
        "{0} wa {1} kwenye Soko",
    ),
    ("for_you", "Recommended for you", "Tumekuchagulia"),
    ("trending", "Trending", "Zinazovuma"),
    (
        "also_viewed",
        "Buyers also viewed",
        "Wanunuzi pia walitazama",
    ),
    ("similar_items", "Similar items", "Bidhaa zinazofanana"),
    (
        "similar_show",
        "Show similar items",
        "Onyesha bidhaa zinazofanana",
    ),
    (
        "similar_unavailable",
        "Similar items are unavailable right now.",
        "Bidhaa zinazofanana hazipatikani kwa sasa.",
    ),
    ("similar_pct", "{0}% similar", "Inafanana kwa {0}%"),
    (
        "whatsapp_message",
        "Hi! I'm interested in your product: {0}\nPrice: {1}\n{2}\nIs this available for delivery?",
        "Habari! Nimevutiwa na bidhaa yako: {0}\nBei: {1}\n{2}\nJe, inapatikana na unaweza kuileta?",
    ),
    (
        "review_invalid",
        "rating must be 1 to 5 stars; review up to 2000 characters",
        "nyota lazima ziwe 1 hadi 5; maoni yasizidi herufi 2000",
    ),
    (
        "review_twice",
        "you already reviewed this product",
        "tayari umetoa maoni kuhusu bidhaa hii",
    ),
    // --- search by photo ---
    (
        "photo_search_intro",
        "Take a photo of something you want, or pick one from your phone: we show the products that look most like it.",
        "Piga picha ya kitu unachotaka, au chagua moja kwenye simu yako: tutakuonyesha bidhaa zinazofanana nayo zaidi.",
    ),
    ("photo", "Photo", "Picha"),
    ("category", "Category", "Kundi"),
    ("any", "Any", "Yoyote"),
    ("lowest_price", "Lowest price (KSh)", "Bei ya chini (KSh)"),
    ("highest_price", "Highest price (KSh)", "Bei ya juu (KSh)"),
    ("city", "City", "Mji"),
    ("price", "Price", "Bei"),
    (
        "photo_no_match",
        "No products look like this photo.",
        "Hakuna bidhaa inayofanana na picha hii.",
    ),
    (
        "photo_no_match_filtered",
        "No products look like this photo with these filters.",
        "Hakuna bidhaa inayofanana na picha hii kwa vichujio hivi.",
    ),
    (
        "photo_too_large",
        "The photo is larger than {0} MB.",
        "Picha ni kubwa kuliko MB {0}.",
    ),
    (
        "photo_choose_first",
        "Choose a photo first.",
        "Chagua picha kwanza.",
    ),
    (
        "photo_prices_hint",
        "Prices are amounts in shillings, like 4500.",
        "Bei ni kiasi cha shilingi, kama 4500.",
    ),
    (
        "photo_city_plain",
        "The city must be plain text.",
        "Jina la mji liwe maandishi ya kawaida tu.",
    ),
    (
        "photo_unusable",
        "That photo could not be used: {0}. Try a JPEG, PNG or WebP photo.",
        "Picha hiyo haikuweza kutumika: {0}. Jaribu picha ya JPEG, PNG au WebP.",
    ),
    (
        "photo_unavailable",
        "Search by photo is unavailable for a moment. Text search and the shop work as usual; please try again shortly.",
        "Kutafuta kwa picha hakupatikani kwa muda. Kutafuta kwa maneno na duka vinafanya kazi kama kawaida; tafadhali jaribu tena baadaye kidogo.",
    ),
    (
        "photo_busy",
        "Search by photo is busy with other searches right now. Please try again in a moment.",
        "Kutafuta kwa picha kuna shughuli nyingi sasa hivi. Tafadhali jaribu tena baada ya muda mfupi.",
    ),
    // --- accounts ---
    (
        "register_title",
        "Create your account",
        "Fungua akaunti yako",
    ),
    ("register_submit", "Create account", "Jisajili"),
    ("your_name", "Your name", "Jina lako"),
    ("email_or_phone", "Email or phone", "Barua pepe au simu"),
    ("password", "Password", "Nenosiri"),
    (
        "password_8",
        "Password (8+ characters)",
        "Nenosiri (herufi 8 au zaidi)",
    ),
    (
        "login_registered",
        "If that email or phone was new here, your account is ready: log in with it. If it already had an account, log in with that account's password (forgot it? /password/forgot).",
        "Kama barua pepe au simu hiyo ni mpya hapa, akaunti yako iko tayari: ingia nayo. Kama tayari ilikuwa na akaunti, ingia kwa nenosiri la akaunti hiyo (umelisahau? /password/forgot).",
    ),
    (
        "login_after_reset",
        "Your new password is set: log in with it.",
        "Nenosiri lako jipya limewekwa: ingia nalo.",
    ),
    (
        "login_hint",
        "New here? Create an account at /register. Forgot your password? /password/forgot",
        "Mgeni hapa? Jisajili kwenye /register. Umesahau nenosiri? /password/forgot",
    ),
    (
        "account_suspended",
        "This account is suspended.",
        "Akaunti hii imesimamishwa.",
    ),
    (
        "login_wrong",
        "Wrong email, phone or password.",
        "Barua pepe, simu au nenosiri si sahihi.",
    ),
    ("your_account", "Your account", "Akaunti yako"),
    ("current_password", "Current password", "Nenosiri la sasa"),
    ("new_password", "New password", "Nenosiri jipya"),
    (
        "new_password_again",
        "New password again",
        "Rudia nenosiri jipya",
    ),
    ("change_password", "Change password", "Badilisha nenosiri"),
    ("sessions", "Sessions", "Vifaa vilivyoingia"),
    (
        "sessions_text",
        "Lost a phone, or logged in on a shared computer? This ends every session and API token of this account, here too.",
        "Umepoteza simu, au uliingia kwenye kompyuta ya pamoja? Hii inatoa akaunti hii kwenye kila kifaa na kufuta kila tokeni ya API, hata hapa.",
    ),
    (
        "log_out_everywhere",
        "Log out everywhere",
        "Toka kila mahali",
    ),
    (
        "forgot_title",
        "Forgot your password?",
        "Umesahau nenosiri lako?",
    ),
    ("forgot_submit", "Send me a link", "Nitumie kiungo"),
    (
        "your_email",
        "Your email address",
        "Anwani yako ya barua pepe",
    ),
    (
        "forgot_we_mail",
        "We mail a link to the account's address.",
        "Tunatuma kiungo kwa barua pepe ya akaunti.",
    ),
    (
        "forgot_no_mail",
        "This shop sends no mail: ask its operator for a reset link (they run `soko admin reset-password`).",
        "Duka hili halitumi barua pepe: muombe msimamizi wake kiungo cha kubadilisha nenosiri (anatumia `soko admin reset-password`).",
    ),
    (
        "forgot_sent",
        "If an account uses that email address, a link to choose a new password is on its way there. It works once, within the next minutes. No mail? Check the spam folder, or ask the shop's operator.",
        "Kama kuna akaunti inayotumia barua pepe hiyo, kiungo cha kuchagua nenosiri jipya kinatumwa huko. Kinafanya kazi mara moja tu, ndani ya dakika chache zijazo. Hujapata barua? Angalia folda ya barua taka, au muulize msimamizi wa duka.",
    ),
    (
        "reset_title",
        "Choose a new password",
        "Chagua nenosiri jipya",
    ),
    (
        "reset_submit",
        "Set the new password",
        "Weka nenosiri jipya",
    ),
    (
        "new_password_8",
        "New password (8+ characters)",
        "Nenosiri jipya (herufi 8 au zaidi)",
    ),
    (
        "link_gone_title",
        "This link no longer works",
        "Kiungo hiki hakifanyi kazi tena",
    ),
    (
        "link_gone_submit",
        "Send me a new link",
        "Nitumie kiungo kipya",
    ),
    (
        "link_gone_notice",
        "A reset link works once, for a short while: this one was used or has expired.",
        "Kiungo cha kubadilisha nenosiri kinafanya kazi mara moja tu, kwa muda mfupi: hiki kimeshatumika au muda wake umekwisha.",
    ),
    (
        "reset_mail_subject",
        "Choose a new password",
        "Chagua nenosiri jipya",
    ),
    (
        "reset_mail_body",
        "Hello {0},\n\nSomeone (we hope you) asked to choose a new password for your account. Open this link to do it; it works once, within {1} minutes:\n\n{2}\n\nIf it was not you, ignore this mail: your password stays as it is.\n",
        "Habari {0},\n\nMtu fulani (tunatumaini ni wewe) ameomba kuchagua nenosiri jipya la akaunti yako. Fungua kiungo hiki kufanya hivyo; kinafanya kazi mara moja tu, ndani ya dakika {1}:\n\n{2}\n\nKama si wewe, puuza barua hii: nenosiri lako litabaki lilivyo.\n",
    ),
    // --- sellers: onboarding, dashboard, products, photos, analytics ---
    ("sell_title", "Sell on Soko", "Uza kwenye Soko"),
    ("sell_submit", "Send for approval", "Tuma ili kuidhinishwa"),
    (
        "sell_notice",
        "Buyers reach you on WhatsApp: use the number your shop answers.",
        "Wanunuzi watakufikia kwa WhatsApp: tumia namba ambayo duka lako hujibu.",
    ),
    ("business_name", "Business name", "Jina la biashara"),
    ("whatsapp_number", "WhatsApp number", "Namba ya WhatsApp"),
    ("main_category", "Main category", "Kundi kuu"),
    ("about_shop", "About your shop", "Kuhusu duka lako"),
    (
        "catalogue_link",
        "Catalogue link (optional)",
        "Kiungo cha katalogi (si lazima)",
    ),
    ("choose", "Choose…", "Chagua…"),
    (
        "seller_dashboard",
        "Seller dashboard",
        "Dashibodi ya muuzaji",
    ),
    ("dashboard", "Dashboard", "Dashibodi"),
    ("status", "Status", "Hali"),
    (
        "pending_notice",
        "An admin reviews new sellers; your products go public once you are approved.",
        "Msimamizi hukagua wauzaji wapya; bidhaa zako zitaonekana kwa wote mara utakapoidhinishwa.",
    ),
    ("views_n", "views", "mara zilizotazamwa"),
    ("views", "Views", "Zilizotazamwa"),
    ("leads_n", "leads", "wateja"),
    ("leads", "Leads", "Wateja"),
    ("whatsapp_leads_n", "WhatsApp leads", "wateja wa WhatsApp"),
    ("conversion", "conversion", "uwiano wa wateja"),
    (
        "conversion_explained",
        "conversion (leads ÷ views)",
        "uwiano wa wateja (wateja ÷ mara zilizotazamwa)",
    ),
    ("n_days", "{0} days", "siku {0}"),
    ("add_product", "Add a product", "Ongeza bidhaa"),
    (
        "analytics_link",
        "Analytics, leads and orders",
        "Takwimu, wateja na oda",
    ),
    ("products", "Products", "Bidhaa"),
    ("product", "Product", "Bidhaa"),
    ("name", "Name", "Jina"),
    ("stock", "Stock", "Zilizopo"),
    ("state", "State", "Hali"),
    ("photos", "Photos", "Picha"),
    ("edit", "Edit", "Hariri"),
    ("show", "Show", "Onyesha"),
    ("hide", "Hide", "Ficha"),
    ("delete", "Delete", "Futa"),
    (
        "delete_confirm",
        "Delete this product? Buyers will no longer see it.",
        "Ufute bidhaa hii? Wanunuzi hawataiona tena.",
    ),
    ("when", "When", "Lini"),
    ("save_product", "Save product", "Hifadhi bidhaa"),
    ("price_ksh", "Price (KSh)", "Bei (KSh)"),
    ("in_stock_label", "In stock", "Idadi iliyopo"),
    ("description", "Description", "Maelezo"),
    ("edit_product", "Edit product", "Hariri bidhaa"),
    (
        "product_not_added",
        "The product was not added: {0}.",
        "Bidhaa haikuongezwa: {0}.",
    ),
    ("photos_of", "Photos of {0}", "Picha za {0}"),
    (
        "see_product_page",
        "See the product page",
        "Tazama ukurasa wa bidhaa",
    ),
    (
        "no_photos_yet",
        "No photos yet: products with a clear photo get far more WhatsApp chats.",
        "Bado hakuna picha: bidhaa zenye picha safi hupata mazungumzo mengi zaidi ya WhatsApp.",
    ),
    ("photo_n_of", "Photo {0} of {1}", "Picha ya {0} ya {1}"),
    ("n_kb", "{0} KB", "KB {0}"),
    (
        "shown_on_cards",
        "shown on cards",
        "inaonyeshwa kwenye orodha",
    ),
    (
        "add_photo_up_to",
        "Add a photo (JPEG, PNG or WebP, up to {0} MB)",
        "Ongeza picha (JPEG, PNG au WebP, hadi MB {0})",
    ),
    ("upload", "Upload", "Pakia"),
    (
        "photos_full",
        "This product has {0} photos, the most it may have.",
        "Bidhaa hii ina picha {0}, idadi ya juu inayoruhusiwa.",
    ),
    (
        "photo_not_added",
        "That photo was not added: {0}.",
        "Picha hiyo haikuongezwa: {0}.",
    ),
    ("analytics", "Analytics", "Takwimu"),
    (
        "analytics_heading",
        "{0}: last {1} days",
        "{0}: siku {1} zilizopita",
    ),
    (
        "chart_caption",
        "Grey: views. Green: WhatsApp leads.",
        "Kijivu: mara zilizotazamwa. Kijani: wateja wa WhatsApp.",
    ),
    (
        "chart_title",
        "Views and leads per day",
        "Mara zilizotazamwa na wateja kwa siku",
    ),
    ("chart_views", "{0} views", "imetazamwa mara {0}"),
    ("chart_leads", "{0} leads", "wateja {0}"),
    ("download_csv", "Download CSV", "Pakua CSV"),
    ("top_products", "Top products", "Bidhaa zinazoongoza"),
    ("orders", "Orders", "Oda"),
    ("total", "Total", "Jumla"),
    ("set", "Set", "Weka"),
    // --- admin ---
    ("admin", "Admin", "Usimamizi"),
    ("admin_accounts_n", "accounts", "akaunti"),
    ("admin_sellers_n", "sellers", "wauzaji"),
    ("admin_waiting_n", "{0} waiting", "{0} wanasubiri"),
    (
        "admin_public_products_n",
        "public products",
        "bidhaa zinazoonekana",
    ),
    (
        "admin_pending_sellers",
        "Sellers waiting for approval",
        "Wauzaji wanaosubiri kuidhinishwa",
    ),
    (
        "admin_no_pending",
        "No seller is waiting.",
        "Hakuna muuzaji anayesubiri.",
    ),
    ("approve", "Approve", "Idhinisha"),
    ("reject", "Reject", "Kataa"),
    (
        "reason_seller_sees",
        "Reason the seller sees",
        "Sababu atakayoiona muuzaji",
    ),
    (
        "moderation_approve",
        "restore / approve",
        "rudisha / idhinisha",
    ),
    ("moderation_flag", "hide (flag)", "ficha (weka alama)"),
    ("moderation_reject", "reject", "kataa"),
    ("apply", "Apply", "Tekeleza"),
    (
        "moderation_invalid",
        "moderation: must be approved, flagged or rejected",
        "uamuzi: lazima uwe kuidhinisha, kuweka alama au kukataa",
    ),
    (
        "reason_needed",
        "reason: the seller needs to know why",
        "sababu: muuzaji anahitaji kujua kwa nini",
    ),
    ("swahili_name", "Swahili name", "Jina la Kiswahili"),
    ("add_category", "Add category", "Ongeza kundi"),
    (
        "category_name_length",
        "name: 2 to 80 characters",
        "jina: herufi 2 hadi 80",
    ),
    (
        "category_exists",
        "name: that category exists",
        "jina: kundi hilo tayari lipo",
    ),
    ("accounts", "Accounts", "Akaunti"),
    (
        "account_search_hint",
        "email, phone or name",
        "barua pepe, simu au jina",
    ),
    ("find", "Find", "Tafuta"),
    ("suspend", "Suspend", "Simamisha"),
    ("reactivate", "Reactivate", "Rejesha"),
    ("audit_log", "Audit log", "Kumbukumbu za ukaguzi"),
    ("who", "Who", "Nani"),
    ("what", "What", "Kitendo"),
    ("target", "Target", "Kilicholengwa"),
    ("from", "From", "Kutoka"),
    ("user_n", "user {0}", "mtumiaji {0}"),
    ("system", "system", "mfumo"),
    // --- states stored in the database, as `Lang::state` shows them ---
    // --- quality control (the admin's queue) and the seller's notifications ---
    (
        "qc_queue",
        "Quality control queue",
        "Foleni ya ukaguzi wa ubora",
    ),
    (
        "qc_empty",
        "No listing waits for a review.",
        "Hakuna tangazo linalosubiri ukaguzi.",
    ),
    ("qc_not_checked", "not checked", "haijakaguliwa"),
    ("qc_sure", "{0} % sure", "uhakika {0} %"),
    ("qc_now", "now {0}", "sasa {0}"),
    (
        "qc_reason_placeholder",
        "Reason the seller sees",
        "Sababu atakayoona muuzaji",
    ),
    ("notifications", "Notifications", "Arifa"),
    ("notifications_new", "{0} new", "{0} mpya"),
    ("nothing_new", "Nothing new.", "Hakuna jipya."),
    ("mark_all_read", "Mark all read", "Weka zote kuwa zimesomwa"),
    (
        "notice_sync_complete",
        "Import from {0} finished: {1} added, {2} updated, {3} removed.",
        "Uingizaji kutoka {0} umekamilika: {1} zimeongezwa, {2} zimesasishwa, {3} zimeondolewa.",
    ),
    (
        "notice_sync_failed",
        "Import from {0} failed: {1}",
        "Uingizaji kutoka {0} umeshindikana: {1}",
    ),
    (
        "notice_source_gone",
        "{0} no longer answers; its listings stay as they were.",
        "{0} haijibu tena; matangazo yake yamebaki kama yalivyokuwa.",
    ),
    (
        "notice_approved",
        "\u{201c}{0}\u{201d} is approved and public.",
        "\u{201c}{0}\u{201d} imeidhinishwa na iko hadharani.",
    ),
    (
        "notice_flagged",
        "\u{201c}{0}\u{201d} waits for a review and is not public meanwhile: {1}",
        "\u{201c}{0}\u{201d} inasubiri ukaguzi na haiko hadharani kwa sasa: {1}",
    ),
    (
        "notice_rejected",
        "\u{201c}{0}\u{201d} was rejected and is not public: {1}",
        "\u{201c}{0}\u{201d} imekataliwa na haiko hadharani: {1}",
    ),
    ("state_active", "active", "hai"),
    ("state_hidden", "hidden", "imefichwa"),
    ("state_approved", "approved", "imeidhinishwa"),
    ("state_flagged", "flagged", "imewekewa alama"),
    ("state_rejected", "rejected", "imekataliwa"),
    ("state_pending", "pending", "inasubiri"),
    ("state_suspended", "suspended", "imesimamishwa"),
    ("state_user", "user", "mtumiaji"),
    ("state_admin", "admin", "msimamizi"),
    ("state_new", "new", "mpya"),
    ("state_contacted", "contacted", "amejibiwa"),
    ("state_converted", "converted", "amenunua"),
    ("state_lost", "lost", "amepotea"),
    ("state_initiated", "initiated", "imeanzishwa"),
    ("state_confirmed", "confirmed", "imethibitishwa"),
    ("state_shipped", "shipped", "imetumwa"),
    ("state_delivered", "delivered", "imefikishwa"),
    ("state_cancelled", "cancelled", "imeghairiwa"),
    // --- error pages (web::Error) ---
    (
        "err_login_required",
        "please log in",
        "tafadhali ingia kwanza",
    ),
    (
        "err_forbidden",
        "you may not do that",
        "huruhusiwi kufanya hivyo",
    ),
    ("err_not_found", "not found", "haikupatikana"),
    (
        "err_csrf",
        "the form expired or came from another site; reload the page and try again",
        "fomu imepitwa na wakati au imetoka tovuti nyingine; pakia ukurasa upya kisha ujaribu tena",
    ),
    (
        "err_unavailable",
        "the service is busy or restarting; try again in a moment",
        "huduma ina shughuli nyingi au inawashwa upya; jaribu tena baada ya muda mfupi",
    ),
    (
        "err_busy",
        "too many password checks at once; try again in a moment",
        "ukaguzi mwingi wa nenosiri kwa wakati mmoja; jaribu tena baada ya muda mfupi",
    ),
    (
        "err_throttled",
        "too many attempts from here; wait {0} and try again",
        "majaribio mengi mno kutoka hapa; subiri {0} kisha ujaribu tena",
    ),
    (
        "err_internal",
        "internal error",
        "hitilafu ya ndani ya mfumo",
    ),
    ("err_back", "Back to the shop", "Rudi sokoni"),
    // --- dates and durations (format.rs) ---
    ("month_1", "Jan", "Jan"),
    ("month_2", "Feb", "Feb"),
    ("month_3", "Mar", "Mac"),
    ("month_4", "Apr", "Apr"),
    ("month_5", "May", "Mei"),
    ("month_6", "Jun", "Jun"),
    ("month_7", "Jul", "Jul"),
    ("month_8", "Aug", "Ago"),
    ("month_9", "Sep", "Sep"),
    ("month_10", "Oct", "Okt"),
    ("month_11", "Nov", "Nov"),
    ("month_12", "Dec", "Des"),
    ("ago_now", "just now", "sasa hivi"),
    ("ago_minute", "a minute ago", "dakika 1 iliyopita"),
    ("ago_minutes", "{0} minutes ago", "dakika {0} zilizopita"),
    ("ago_hour", "an hour ago", "saa 1 iliyopita"),
    ("ago_hours", "{0} hours ago", "saa {0} zilizopita"),
    ("ago_yesterday", "yesterday", "jana"),
    ("ago_days", "{0} days ago", "siku {0} zilizopita"),
    ("dur_second", "1 second", "sekunde 1"),
    ("dur_seconds", "{0} seconds", "sekunde {0}"),
    ("dur_minute", "1 minute", "dakika 1"),
    ("dur_minutes", "{0} minutes", "dakika {0}"),
    ("dur_hour", "1 hour", "saa 1"),
    ("dur_hours", "{0} hours", "saa {0}"),
];

/// Words that read the same in both languages and may show on a Swahili page: names of
/// things, brands and units (the leak test and `tests.rs` allow them).
pub const SAME_IN_BOTH: &[&str] = &[
    "Soko",
    "WhatsApp",
    "KSh",
    "KES",
    "CSV",
    "JPEG",
    "PNG",
    "WebP",
    "MB",
    "KB",
    "API",
    "UTC",
    "English",
    "Kiswahili",
    "Jan",
    "Feb",
    "Apr",
    "Jun",
    "Jul",
    "Sep",
    "Nov",
];

/// (English, Swahili) of `key`.
pub(super) fn lookup(key: &str) -> Option<(&'static str, &'static str)> {
    static INDEX: OnceLock<std::collections::HashMap<&'static str, (&'static str, &'static str)>> =
        OnceLock::new();
    INDEX
        .get_or_init(|| STRINGS.iter().map(|(k, en, sw)| (*k, (*en, *sw))).collect())
        .get(key)
        .copied()
}

/// An unknown key as text that lives as long as the process (a bounded set: after 256
/// distinct unknown keys, `?`). Only a bug reaches this; the tests keep it from shipping.
pub(super) fn leak_key(key: &str) -> &'static str {
    static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = seen.get(key) {
        return k;
    }
    if seen.len() >= 256 || key.is_empty() {
        return "?";
    }
    let k: &'static str = Box::leak(key.to_owned().into_boxed_str());
    seen.insert(k);
    k
}
