//! The currency a number is printed with: a symbol or code glued to or next to it.

use super::words::trim;
use crate::extract::currency::{self, MAX_SYMBOL_CHARS, Marker};

/// A currency at the end of the word before a number: "$", "(US$", "Price:€", "CHF".
pub(super) fn marker_suffix(word: &str) -> Option<Marker> {
    if let Some(m) = marker_word(word) {
        return Some(m);
    }
    // Every glued symbol has a character that is not an ASCII letter or digit.
    if word.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut starts = [0usize; MAX_SYMBOL_CHARS];
    let mut n = 0;
    for (i, _) in word.char_indices().rev().take(MAX_SYMBOL_CHARS) {
        starts[n] = i;
        n += 1;
    }
    // Longest first: "US$" before "$"; a symbol that starts with a letter starts a word
    // ("BONUS$" holds "$", not "US$").
    starts[..n]
        .iter()
        .rev()
        .filter(|&&i| on_boundary(word[..i].chars().next_back(), word[i..].chars().next()))
        .find_map(|&i| currency::symbol(&word[i..]))
}

/// A currency at the start of the word after a number: "€", "€*", "円（税込）", "zł".
pub(super) fn marker_prefix(word: &str) -> Option<Marker> {
    // One Latin letter after a number is a unit or a model ("2L", "4K", "3Q"): the currencies
    // written so (Q, L, R, N) go before the number.
    let mut letters = trim_punctuation(word).chars();
    if letters.next().is_some_and(|c| c.is_ascii_alphabetic()) && letters.next().is_none() {
        return None;
    }
    if let Some(m) = marker_word(word) {
        return Some(m);
    }
    if word.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut ends = [0usize; MAX_SYMBOL_CHARS];
    let mut n = 0;
    for (i, c) in word.char_indices().take(MAX_SYMBOL_CHARS) {
        ends[n] = i + c.len_utf8();
        n += 1;
    }
    ends[..n]
        .iter()
        .rev()
        .filter(|&&end| on_boundary(word[..end].chars().next_back(), word[end..].chars().next()))
        .find_map(|&end| currency::symbol(&word[..end]))
}

/// Whether a cut between two characters may end a symbol made of letters: not between two
/// letters of a script that spaces its words, where it would cut a word ("20$US" is "$" and
/// "US", not "$U"). Scripts without case print words unspaced ("99元起"), so any cut is one.
fn on_boundary(before: Option<char>, after: Option<char>) -> bool {
    let cased = |c: char| c.is_lowercase() || c.is_uppercase();
    !(before.is_some_and(cased) && after.is_some_and(cased))
}

pub(super) fn marker_word(word: &str) -> Option<Marker> {
    if let Some(m) = currency::word(word).or_else(|| currency::symbol(word)) {
        return Some(m);
    }
    let punct = trim_punctuation(word);
    if punct.len() != word.len()
        && let Some(m) = currency::word(punct)
    {
        return Some(m);
    }
    let bare = trim(word);
    if bare.len() != punct.len() && !bare.is_empty() {
        return currency::word(bare);
    }
    None
}

fn trim_punctuation(word: &str) -> &str {
    word.trim_matches(|c: char| "()[]{}:;,!?*\"«»（）".contains(c))
}
