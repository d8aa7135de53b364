//! Stock status -> a schema.org ItemAvailability name, from structured data
//! ("https://schema.org/InStock", "instock", "oos") or from the text a shop shows.

use std::collections::HashSet;
use std::sync::LazyLock;

use super::currency::Fnv;

/// The names pagehook reports, as schema.org spells them.
const NAMES: &[&str] = &[
    "InStock",
    "OutOfStock",
    "SoldOut",
    "PreOrder",
    "PreSale",
    "BackOrder",
    "Discontinued",
    "LimitedAvailability",
    "InStoreOnly",
    "OnlineOnly",
    "MadeToOrder",
    "Reserved",
];

/// Short machine forms seen in meta tags and feeds.
const CODES: &[(&str, &str)] = &[
    ("instock", "InStock"),
    ("in_stock", "InStock"),
    ("in-stock", "InStock"),
    ("available", "InStock"),
    ("oos", "OutOfStock"),
    ("outofstock", "OutOfStock"),
    ("out_of_stock", "OutOfStock"),
    ("out-of-stock", "OutOfStock"),
    ("soldout", "SoldOut"),
    ("sold_out", "SoldOut"),
    ("preorder", "PreOrder"),
    ("pre-order", "PreOrder"),
    ("pre_order", "PreOrder"),
    ("backorder", "BackOrder"),
    ("available for order", "BackOrder"),
    ("discontinued", "Discontinued"),
    ("limited", "LimitedAvailability"),
];

/// Phrases in visible text, most specific first: "not available" must be read before
/// "available", "nicht verfügbar" before "verfügbar".
const PHRASES: &[(&str, &str)] = &[
    // Discontinued
    ("discontinued", "Discontinued"),
    ("no longer available", "Discontinued"),
    ("nicht mehr verfügbar", "Discontinued"),
    ("nicht mehr lieferbar", "Discontinued"),
    ("n'est plus disponible", "Discontinued"),
    ("plus disponible", "Discontinued"),
    ("descatalogado", "Discontinued"),
    ("fuori produzione", "Discontinued"),
    ("uit assortiment", "Discontinued"),
    ("снят с производства", "Discontinued"),
    ("販売終了", "Discontinued"),
    ("販売中止", "Discontinued"),
    ("已下架", "Discontinued"),
    ("停产", "Discontinued"),
    ("단종", "Discontinued"),
    ("판매종료", "Discontinued"),
    ("판매 종료", "Discontinued"),
    ("satıştan kaldırıldı", "Discontinued"),
    // Sold out
    ("sold out", "SoldOut"),
    ("soldout", "SoldOut"),
    ("ausverkauft", "SoldOut"),
    ("épuisé", "SoldOut"),
    ("epuise", "SoldOut"),
    ("agotado", "SoldOut"),
    ("esgotado", "SoldOut"),
    ("esaurito", "SoldOut"),
    ("uitverkocht", "SoldOut"),
    ("wyprzedany", "SoldOut"),
    ("wyprzedane", "SoldOut"),
    ("wyprzedana", "SoldOut"),
    ("vypredané", "SoldOut"),
    ("vypredaný", "SoldOut"),
    ("vyprodáno", "SoldOut"),
    ("распродано", "SoldOut"),
    ("slutsåld", "SoldOut"),
    ("udsolgt", "SoldOut"),
    ("utsolgt", "SoldOut"),
    ("loppuunmyyty", "SoldOut"),
    ("utsålt", "SoldOut"),
    ("vergriffen", "SoldOut"),
    ("tükendi", "SoldOut"),
    ("売り切れ", "SoldOut"),
    ("品切れ", "SoldOut"),
    ("售罄", "SoldOut"),
    ("已售完", "SoldOut"),
    ("售完", "SoldOut"),
    ("품절", "SoldOut"),
    ("نفذت الكمية", "SoldOut"),
    ("نفدت الكمية", "SoldOut"),
    // Out of stock
    ("out of stock", "OutOfStock"),
    ("out-of-stock", "OutOfStock"),
    ("not in stock", "OutOfStock"),
    ("currently unavailable", "OutOfStock"),
    ("unavailable", "OutOfStock"),
    ("not available", "OutOfStock"),
    ("nicht verfügbar", "OutOfStock"),
    ("nicht auf lager", "OutOfStock"),
    ("nicht lieferbar", "OutOfStock"),
    ("nicht vorrätig", "OutOfStock"),
    ("nicht lagernd", "OutOfStock"),
    ("derzeit nicht", "OutOfStock"),
    ("rupture de stock", "OutOfStock"),
    ("en rupture", "OutOfStock"),
    ("hors stock", "OutOfStock"),
    ("indisponible", "OutOfStock"),
    ("non disponible", "OutOfStock"),
    ("sin stock", "OutOfStock"),
    ("sin existencias", "OutOfStock"),
    ("no disponible", "OutOfStock"),
    ("fuera de stock", "OutOfStock"),
    ("indisponível", "OutOfStock"),
    ("não disponível", "OutOfStock"),
    ("sem estoque", "OutOfStock"),
    ("fora de estoque", "OutOfStock"),
    ("sem stock", "OutOfStock"),
    ("fora de stock", "OutOfStock"),
    ("non disponibile", "OutOfStock"),
    ("non disponibili", "OutOfStock"),
    ("niet op voorraad", "OutOfStock"),
    ("niet leverbaar", "OutOfStock"),
    ("niedostępny", "OutOfStock"),
    ("niedostępne", "OutOfStock"),
    ("niedostępna", "OutOfStock"),
    ("brak na stanie", "OutOfStock"),
    ("brak produktu", "OutOfStock"),
    ("brak w magazynie", "OutOfStock"),
    ("brak towaru", "OutOfStock"),
    ("není skladem", "OutOfStock"),
    ("není na skladě", "OutOfStock"),
    ("nie je na sklade", "OutOfStock"),
    ("nie je skladom", "OutOfStock"),
    ("nedostupné", "OutOfStock"),
    ("nedostupný", "OutOfStock"),
    ("nedostupná", "OutOfStock"),
    ("nincs készleten", "OutOfStock"),
    ("нет в наличии", "OutOfStock"),
    ("немає в наявності", "OutOfStock"),
    ("отсутствует", "OutOfStock"),
    ("нет на складе", "OutOfStock"),
    ("закончился", "OutOfStock"),
    ("ej i lager", "OutOfStock"),
    ("slut i lager", "OutOfStock"),
    ("inte i lager", "OutOfStock"),
    ("finns ej i lager", "OutOfStock"),
    ("tillfälligt slut", "OutOfStock"),
    ("ikke tilgjengelig", "OutOfStock"),
    ("ikke tilgængelig", "OutOfStock"),
    ("ikke på lager", "OutOfStock"),
    ("ei varastossa", "OutOfStock"),
    ("loppu varastosta", "OutOfStock"),
    ("tilapäisesti loppu", "OutOfStock"),
    ("stokta yok", "OutOfStock"),
    ("stokta bulunmamaktadır", "OutOfStock"),
    ("stokta değil", "OutOfStock"),
    ("mevcut değil", "OutOfStock"),
    ("satışta değil", "OutOfStock"),
    ("在庫切れ", "OutOfStock"),
    ("在庫なし", "OutOfStock"),
    ("入荷待ち", "OutOfStock"),
    ("无货", "OutOfStock"),
    ("缺貨", "OutOfStock"),
    ("缺货", "OutOfStock"),
    ("無貨", "OutOfStock"),
    ("재고 없음", "OutOfStock"),
    ("재고없음", "OutOfStock"),
    ("구매 불가", "OutOfStock"),
    ("구매불가", "OutOfStock"),
    ("غير متوفر", "OutOfStock"),
    ("غير متاح", "OutOfStock"),
    ("hết hàng", "OutOfStock"),
    ("אזל מהמלאי", "OutOfStock"),
    // Pre-order
    ("pre-order", "PreOrder"),
    ("preorder", "PreOrder"),
    ("pre order", "PreOrder"),
    ("vorbestellen", "PreOrder"),
    ("vorbestellung", "PreOrder"),
    ("précommande", "PreOrder"),
    ("pré-commande", "PreOrder"),
    ("precommande", "PreOrder"),
    ("preventa", "PreOrder"),
    ("pré-venda", "PreOrder"),
    ("pre-venda", "PreOrder"),
    ("preordina", "PreOrder"),
    ("pre-ordina", "PreOrder"),
    ("voorbestellen", "PreOrder"),
    ("przedsprzedaż", "PreOrder"),
    ("předobjednávka", "PreOrder"),
    ("предзаказ", "PreOrder"),
    ("förbeställ", "PreOrder"),
    ("予約受付", "PreOrder"),
    ("预售", "PreOrder"),
    ("예약", "PreOrder"),
    // Back order
    ("backorder", "BackOrder"),
    ("back-order", "BackOrder"),
    ("back order", "BackOrder"),
    ("nachbestellt", "BackOrder"),
    ("on order", "BackOrder"),
    ("en réapprovisionnement", "BackOrder"),
    ("bajo pedido", "BackOrder"),
    ("под заказ", "BackOrder"),
    // Limited
    ("few left", "LimitedAvailability"),
    ("low stock", "LimitedAvailability"),
    ("limited stock", "LimitedAvailability"),
    ("nur noch", "LimitedAvailability"),
    ("wenige verfügbar", "LimitedAvailability"),
    ("plus que", "LimitedAvailability"),
    ("stock limité", "LimitedAvailability"),
    ("últimas unidades", "LimitedAvailability"),
    ("quedan pocas", "LimitedAvailability"),
    ("ultimi pezzi", "LimitedAvailability"),
    ("осталось мало", "LimitedAvailability"),
    ("мало на складе", "LimitedAvailability"),
    ("ostatnie sztuki", "LimitedAvailability"),
    ("posledné kusy", "LimitedAvailability"),
    ("poslední kusy", "LimitedAvailability"),
    ("få på lager", "LimitedAvailability"),
    ("få kvar", "LimitedAvailability"),
    ("tükenmek üzere", "LimitedAvailability"),
    ("在庫僅少", "LimitedAvailability"),
    ("库存紧张", "LimitedAvailability"),
    ("재고 부족", "LimitedAvailability"),
    ("残りわずか", "LimitedAvailability"),
    // In stock
    ("in stock", "InStock"),
    ("instock", "InStock"),
    ("available", "InStock"),
    ("ready to ship", "InStock"),
    ("add to cart", "InStock"),
    ("add to basket", "InStock"),
    ("auf lager", "InStock"),
    ("lieferbar", "InStock"),
    ("verfügbar", "InStock"),
    ("vorrätig", "InStock"),
    ("lagernd", "InStock"),
    ("in den warenkorb", "InStock"),
    ("en stock", "InStock"),
    ("disponible", "InStock"),
    ("ajouter au panier", "InStock"),
    ("en existencia", "InStock"),
    ("em estoque", "InStock"),
    ("em stock", "InStock"),
    ("disponível", "InStock"),
    ("disponibile", "InStock"),
    ("disponibilità immediata", "InStock"),
    ("in magazzino", "InStock"),
    ("op voorraad", "InStock"),
    ("leverbaar", "InStock"),
    ("dostępny", "InStock"),
    ("dostępne", "InStock"),
    ("dostępna", "InStock"),
    ("na stanie", "InStock"),
    ("w magazynie", "InStock"),
    ("skladem", "InStock"),
    ("na skladě", "InStock"),
    ("na sklade", "InStock"),
    ("skladom", "InStock"),
    ("készleten", "InStock"),
    ("в наличии", "InStock"),
    ("есть на складе", "InStock"),
    ("є в наявності", "InStock"),
    ("в наявності", "InStock"),
    ("i lager", "InStock"),
    ("på lager", "InStock"),
    ("varastossa", "InStock"),
    ("stokta var", "InStock"),
    ("stokta mevcut", "InStock"),
    ("stokta", "InStock"),
    ("在庫あり", "InStock"),
    ("有货", "InStock"),
    ("现货", "InStock"),
    ("有現貨", "InStock"),
    ("有貨", "InStock"),
    ("재고 있음", "InStock"),
    ("재고있음", "InStock"),
    ("구매 가능", "InStock"),
    ("구매가능", "InStock"),
    ("متوفر", "InStock"),
    ("متاح", "InStock"),
    ("còn hàng", "InStock"),
    ("במלאי", "InStock"),
];

/// Text longer than this is not a stock label; scanning it would only find false matches.
const MAX_TEXT: usize = 4096;

/// The schema.org name for an availability written as a URL, a bare name, a feed code or
/// shop text; None when the text says nothing about stock.
pub fn normalise(text: &str) -> Option<&'static str> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_TEXT {
        return None;
    }
    // What follows the last `/`, `:` or `#`: a URL's or a prefixed name's last part.
    let bare = memchr::memrchr3(b'/', b':', b'#', text.as_bytes())
        .map_or(text, |at| &text[at + 1..])
        .trim();
    if let Some(name) = NAMES.iter().find(|n| n.eq_ignore_ascii_case(bare)) {
        return Some(name);
    }
    let lower = text.to_lowercase();
    if let Some((_, name)) = CODES.iter().find(|(code, _)| *code == lower) {
        return Some(name);
    }
    if only_n_left(&lower) {
        return Some("LimitedAvailability");
    }
    if !may_hold_a_phrase(&lower) {
        return None;
    }
    PHRASES
        .iter()
        .find(|(phrase, _)| lower.contains(phrase))
        .map(|(_, name)| *name)
}

/// How many bytes of a phrase open it: every phrase has as many.
const OPENING: usize = 6;

/// The opening bytes of every phrase, as numbers.
static OPENINGS: LazyLock<HashSet<u64, Fnv>> =
    LazyLock::new(|| PHRASES.iter().map(|(p, _)| opening(p.as_bytes())).collect());

fn opening(bytes: &[u8]) -> u64 {
    let mut key = [0; 8];
    key[..OPENING].copy_from_slice(&bytes[..OPENING]);
    u64::from_le_bytes(key)
}

/// The first two bytes of every phrase, one bit each: at most positions of a text no phrase
/// starts, which a bit tells more cheaply than a look in `OPENINGS`.
static FIRST_PAIRS: LazyLock<[u64; 1024]> = LazyLock::new(|| {
    let mut bits = [0; 1024];
    for (phrase, _) in PHRASES {
        let pair = first_pair(phrase.as_bytes());
        bits[pair / 64] |= 1 << (pair % 64);
    }
    bits
});

fn first_pair(bytes: &[u8]) -> usize {
    (usize::from(bytes[0]) << 8) | usize::from(bytes[1])
}

/// Whether any phrase could start somewhere in `lower`: most of a page's short texts hold
/// none, and one look per position is far cheaper than a search for each phrase.
fn may_hold_a_phrase(lower: &str) -> bool {
    let pairs = &*FIRST_PAIRS;
    lower.as_bytes().windows(OPENING).any(|w| {
        let pair = first_pair(w);
        (pairs[pair / 64] >> (pair % 64)) & 1 == 1 && OPENINGS.contains(&opening(w))
    })
}

/// "Only 3 left", "Nur noch 2 Stück": few enough that a shop warns about it.
fn only_n_left(lower: &str) -> bool {
    lower.split("only ").skip(1).any(|after| {
        let rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
        rest.len() < after.len() && rest.trim_start().starts_with("left")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_forms() {
        for (text, want) in [
            ("https://schema.org/InStock", "InStock"),
            ("http://schema.org/OutOfStock", "OutOfStock"),
            ("schema:PreOrder", "PreOrder"),
            ("InStock", "InStock"),
            ("instock", "InStock"),
            ("in stock", "InStock"),
            ("oos", "OutOfStock"),
            ("out of stock", "OutOfStock"),
            ("preorder", "PreOrder"),
            (
                "https://schema.org/LimitedAvailability",
                "LimitedAvailability",
            ),
            ("http://schema.org/Discontinued", "Discontinued"),
            ("SoldOut", "SoldOut"),
            ("BackOrder", "BackOrder"),
        ] {
            assert_eq!(normalise(text), Some(want), "{text}");
        }
    }

    #[test]
    fn shop_text_in_many_languages() {
        for (text, want) in [
            ("In stock", "InStock"),
            ("In stock (22 available)", "InStock"),
            ("Only 3 left in stock - order soon.", "LimitedAvailability"),
            ("Currently unavailable.", "OutOfStock"),
            ("Sold out", "SoldOut"),
            ("Ausverkauft", "SoldOut"),
            ("Sofort lieferbar", "InStock"),
            ("Derzeit nicht verfügbar", "OutOfStock"),
            ("Nicht mehr verfügbar", "Discontinued"),
            ("Épuisé", "SoldOut"),
            ("En stock", "InStock"),
            ("Rupture de stock", "OutOfStock"),
            ("Agotado", "SoldOut"),
            ("Disponible", "InStock"),
            ("Esgotado", "SoldOut"),
            ("Em estoque", "InStock"),
            ("Non disponibile", "OutOfStock"),
            ("Op voorraad", "InStock"),
            ("Niet op voorraad", "OutOfStock"),
            ("Niedostępny", "OutOfStock"),
            ("Skladem", "InStock"),
            ("Нет в наличии", "OutOfStock"),
            ("В наличии", "InStock"),
            ("Предзаказ", "PreOrder"),
            ("Немає в наявності", "OutOfStock"),
            ("Ikke på lager", "OutOfStock"),
            ("På lager", "InStock"),
            ("Slutsåld", "SoldOut"),
            ("Stokta yok", "OutOfStock"),
            ("在庫あり", "InStock"),
            ("在庫切れ", "OutOfStock"),
            ("品切れ", "SoldOut"),
            ("缺货", "OutOfStock"),
            ("품절", "SoldOut"),
            ("غير متوفر", "OutOfStock"),
            ("متوفر", "InStock"),
            ("Pre-order now", "PreOrder"),
            ("Available for backorder", "BackOrder"),
        ] {
            assert_eq!(normalise(text), Some(want), "{text}");
        }
    }

    /// A phrase listed after a shorter one it contains would never be read.
    /// The quick look for a phrase's opening needs `OPENING` bytes of each.
    #[test]
    fn every_phrase_is_found_by_its_opening() {
        for (phrase, _) in PHRASES {
            assert!(phrase.len() >= OPENING, "{phrase}");
            assert!(may_hold_a_phrase(&format!("x {phrase} y")), "{phrase}");
        }
        assert!(!may_hold_a_phrase(
            "related item 12 with a long descriptive name"
        ));
        assert!(!may_hold_a_phrase("great value, works as described"));
    }

    #[test]
    fn every_phrase_reads_as_its_own_status() {
        for (phrase, want) in PHRASES {
            assert_eq!(normalise(phrase), Some(*want), "{phrase}");
        }
    }

    #[test]
    fn negations_before_the_words_they_contain() {
        for (language, cases) in [
            (
                "German",
                &[
                    ("Nicht vorrätig", "OutOfStock"),
                    ("Vorrätig", "InStock"),
                    ("Lagernd", "InStock"),
                    ("Nicht lagernd", "OutOfStock"),
                    ("Vergriffen", "SoldOut"),
                ][..],
            ),
            (
                "Polish",
                &[
                    ("Produkt niedostępny", "OutOfStock"),
                    ("Chwilowo niedostępne", "OutOfStock"),
                    ("Brak na stanie", "OutOfStock"),
                    ("Dostępna", "InStock"),
                    ("Produkt na stanie", "InStock"),
                    ("Wyprzedana", "SoldOut"),
                ],
            ),
            (
                "Czech/Slovak",
                &[
                    ("Není na skladě", "OutOfStock"),
                    ("Na skladě", "InStock"),
                    ("Nie je na sklade", "OutOfStock"),
                    ("Na sklade", "InStock"),
                    ("Skladom", "InStock"),
                    ("Momentálne nedostupné", "OutOfStock"),
                    ("Vypredané", "SoldOut"),
                    ("Poslední kusy", "LimitedAvailability"),
                ],
            ),
            (
                "Nordic",
                &[
                    ("Finns i lager", "InStock"),
                    ("Finns ej i lager", "OutOfStock"),
                    ("Inte i lager", "OutOfStock"),
                    ("Tillfälligt slut", "OutOfStock"),
                    ("Få kvar", "LimitedAvailability"),
                    ("Midlertidig utsolgt", "SoldOut"),
                    ("Ikke tilgjengelig", "OutOfStock"),
                    ("Ikke tilgængelig", "OutOfStock"),
                    ("Få på lager", "LimitedAvailability"),
                    ("Tilapäisesti loppu", "OutOfStock"),
                    ("Loppu varastosta", "OutOfStock"),
                    ("Varastossa", "InStock"),
                ],
            ),
            (
                "Turkish",
                &[
                    ("Stokta var", "InStock"),
                    ("Stokta değil", "OutOfStock"),
                    ("Ürün stokta bulunmamaktadır", "OutOfStock"),
                    ("Mevcut değil", "OutOfStock"),
                    ("Tükenmek üzere", "LimitedAvailability"),
                    ("Tükendi", "SoldOut"),
                ],
            ),
            (
                "Korean",
                &[
                    ("재고있음", "InStock"),
                    ("재고없음", "OutOfStock"),
                    ("일시품절", "SoldOut"),
                    ("구매 불가", "OutOfStock"),
                    ("구매 가능", "InStock"),
                    ("단종", "Discontinued"),
                    ("재고 부족", "LimitedAvailability"),
                ],
            ),
            (
                "Japanese/Chinese",
                &[
                    ("入荷待ち", "OutOfStock"),
                    ("在庫僅少", "LimitedAvailability"),
                    ("无货", "OutOfStock"),
                    ("缺貨", "OutOfStock"),
                    ("有貨", "InStock"),
                    ("已下架", "Discontinued"),
                ],
            ),
            (
                "Romance and Dutch",
                &[
                    ("Hors stock", "OutOfStock"),
                    ("Fuera de stock", "OutOfStock"),
                    ("Sem stock", "OutOfStock"),
                    ("Em stock", "InStock"),
                    ("Disponibilità immediata", "InStock"),
                    ("Direct leverbaar", "InStock"),
                    ("Niet leverbaar", "OutOfStock"),
                ],
            ),
            (
                "Russian",
                &[
                    ("Нет на складе", "OutOfStock"),
                    ("Товар закончился", "OutOfStock"),
                    ("Есть на складе", "InStock"),
                ],
            ),
        ] {
            for (text, want) in cases {
                assert_eq!(normalise(text), Some(*want), "{language}: {text}");
            }
        }
    }

    #[test]
    fn text_without_stock_words_is_unknown() {
        for text in ["", "Widget Pro", "$19.99", &"x".repeat(10_000)] {
            assert_eq!(normalise(text), None, "{text}");
        }
    }
}
