//! Stock status -> a schema.org ItemAvailability name, from structured data
//! ("https://schema.org/InStock", "instock", "oos") or from the text a shop shows.

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
    ("vyprodáno", "SoldOut"),
    ("распродано", "SoldOut"),
    ("slutsåld", "SoldOut"),
    ("udsolgt", "SoldOut"),
    ("utsolgt", "SoldOut"),
    ("loppuunmyyty", "SoldOut"),
    ("tükendi", "SoldOut"),
    ("売り切れ", "SoldOut"),
    ("品切れ", "SoldOut"),
    ("售罄", "SoldOut"),
    ("已售完", "SoldOut"),
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
    ("derzeit nicht", "OutOfStock"),
    ("rupture de stock", "OutOfStock"),
    ("en rupture", "OutOfStock"),
    ("indisponible", "OutOfStock"),
    ("non disponible", "OutOfStock"),
    ("sin stock", "OutOfStock"),
    ("sin existencias", "OutOfStock"),
    ("no disponible", "OutOfStock"),
    ("indisponível", "OutOfStock"),
    ("não disponível", "OutOfStock"),
    ("sem estoque", "OutOfStock"),
    ("fora de estoque", "OutOfStock"),
    ("non disponibile", "OutOfStock"),
    ("non disponibili", "OutOfStock"),
    ("niet op voorraad", "OutOfStock"),
    ("niet leverbaar", "OutOfStock"),
    ("niedostępny", "OutOfStock"),
    ("brak w magazynie", "OutOfStock"),
    ("brak towaru", "OutOfStock"),
    ("není skladem", "OutOfStock"),
    ("nincs készleten", "OutOfStock"),
    ("нет в наличии", "OutOfStock"),
    ("немає в наявності", "OutOfStock"),
    ("отсутствует", "OutOfStock"),
    ("ej i lager", "OutOfStock"),
    ("slut i lager", "OutOfStock"),
    ("ikke på lager", "OutOfStock"),
    ("ei varastossa", "OutOfStock"),
    ("stokta yok", "OutOfStock"),
    ("在庫切れ", "OutOfStock"),
    ("在庫なし", "OutOfStock"),
    ("缺货", "OutOfStock"),
    ("無貨", "OutOfStock"),
    ("재고 없음", "OutOfStock"),
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
    ("in den warenkorb", "InStock"),
    ("en stock", "InStock"),
    ("disponible", "InStock"),
    ("ajouter au panier", "InStock"),
    ("en existencia", "InStock"),
    ("em estoque", "InStock"),
    ("disponível", "InStock"),
    ("disponibile", "InStock"),
    ("op voorraad", "InStock"),
    ("dostępny", "InStock"),
    ("w magazynie", "InStock"),
    ("skladem", "InStock"),
    ("készleten", "InStock"),
    ("в наличии", "InStock"),
    ("є в наявності", "InStock"),
    ("в наявності", "InStock"),
    ("i lager", "InStock"),
    ("på lager", "InStock"),
    ("varastossa", "InStock"),
    ("stokta", "InStock"),
    ("在庫あり", "InStock"),
    ("有货", "InStock"),
    ("现货", "InStock"),
    ("有現貨", "InStock"),
    ("재고 있음", "InStock"),
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
    let bare = text.rsplit(['/', ':', '#']).next().unwrap_or(text).trim();
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
    PHRASES
        .iter()
        .find(|(phrase, _)| lower.contains(phrase))
        .map(|(_, name)| *name)
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

    #[test]
    fn text_without_stock_words_is_unknown() {
        for text in ["", "Widget Pro", "$19.99", &"x".repeat(10_000)] {
            assert_eq!(normalise(text), None, "{text}");
        }
    }
}
