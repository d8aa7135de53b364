//! The product's title and buy button, the two things every product page shows.

use std::sync::LazyLock;

use scraper::{ElementRef, Html, Selector};

use super::{in_chrome, names, short_text};

fn selector(css: &str) -> Selector {
    Selector::parse(css).expect("valid selector")
}

/// The product's title: the first `h1` outside the page's frame and outside a link (a title
/// that links elsewhere is a listed product's, as in a list of other deals).
pub(super) fn title(html: &Html) -> Option<ElementRef<'_>> {
    static H1: LazyLock<Selector> = LazyLock::new(|| selector("h1"));
    html.select(&H1)
        .filter(|h| !in_chrome(**h) && !in_link(*h))
        .find(|h| short_text(*h, 400).is_some_and(|t| !t.is_empty()))
}

/// Whether `e` sits inside a link to somewhere.
fn in_link(e: ElementRef<'_>) -> bool {
    e.ancestors()
        .filter_map(ElementRef::wrap)
        .any(|a| a.value().name() == "a" && a.value().attr("href").is_some())
}

/// Words on a button that puts the product in the cart or buys it, lower case.
const BUY_WORDS: &[&str] = &[
    "add to cart",
    "add to bag",
    "add to basket",
    "add to trolley",
    "buy now",
    "buy it now",
    "in den warenkorb",
    "in den einkaufswagen",
    "jetzt kaufen",
    "ajouter au panier",
    "à votre panier",
    "acheter",
    "añadir al carrito",
    "añadir a la cesta",
    "agregar al carrito",
    "comprar",
    "adicionar ao carrinho",
    "adicionar à sacola",
    "aggiungi al carrello",
    "acquista",
    "in winkelwagen",
    "toevoegen aan winkelwagen",
    "in winkelmand",
    "do koszyka",
    "do košíku",
    "do košíka",
    "vložit do košíku",
    "kúpiť",
    "koupit",
    "kupi",
    "lägg i varukorgen",
    "köp",
    "læg i kurv",
    "legg i handlekurven",
    "lisää ostoskoriin",
    "в корзину",
    "купить",
    "у кошик",
    "sepete ekle",
    "satın al",
    "カートに入れる",
    "カートに追加",
    "今すぐ購入",
    "加入购物车",
    "立即购买",
    "加入購物車",
    "장바구니",
    "바로구매",
    "구매하기",
    "kosárba",
    "u košaricu",
    "dodaj u košaricu",
    "pievienot grozam",
    "į krepšelį",
    "lisa ostukorvi",
    "أضف إلى السلة",
];

/// Class or id names of a buy button.
const BUY_NAMES: &[&str] = &[
    "add-to-cart",
    "addtocart",
    "add_to_cart",
    "add-to-basket",
    "addtobasket",
    "add-to-bag",
    "addtobag",
    "buy-now",
    "buynow",
    "buy-button",
    "buybutton",
];

/// Whether the element's own text says it buys the product ("Add to cart").
pub(super) fn says_buy(e: ElementRef<'_>) -> bool {
    let said = short_text(e, 160).unwrap_or_default().to_lowercase();
    BUY_WORDS.iter().any(|w| said.contains(w))
}

/// Whether the element reads as a buy button: its words, value, label or names.
pub(super) fn is_buy(e: ElementRef<'_>) -> bool {
    let v = e.value();
    let mut said = short_text(e, 80).unwrap_or_default().to_lowercase();
    for attr in ["value", "aria-label", "title"] {
        if let Some(a) = v.attr(attr) {
            said.push(' ');
            said.push_str(&a.to_lowercase());
        }
    }
    BUY_WORDS.iter().any(|w| said.contains(w)) || {
        let named = names(e);
        BUY_NAMES.iter().any(|n| named.contains(n))
    }
}

/// The first buy button outside the page's frame.
pub(super) fn buy_button(html: &Html) -> Option<ElementRef<'_>> {
    static BUTTONS: LazyLock<Selector> = LazyLock::new(|| {
        selector(
            r#"button, input[type="submit"], input[type="button"], a[role="button"], a[class~="btn"], a[class~="button"], form a, [class*="cart"], [id*="cart"], [class*="basket"], [class*="buy"], [id*="buy"]"#,
        )
    });
    html.select(&BUTTONS)
        .filter(|e| !in_chrome(**e))
        .find(|e| is_buy(*e))
}

/// A button a shopper cannot press: `disabled`, `aria-disabled` or a disabled class.
pub(super) fn is_disabled(e: ElementRef<'_>) -> bool {
    let v = e.value();
    v.attr("disabled").is_some()
        || v.attr("aria-disabled") == Some("true")
        || v.classes().any(|c| {
            let c = c.to_ascii_lowercase();
            c == "disabled" || c.ends_with("-disabled") || c.ends_with("--disabled")
        })
}
