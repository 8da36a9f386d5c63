//! Meta's limits on template definitions (lengths, counts), shared by validation and expansion.

/// Template name limit (characters).
pub const MAX_NAME: usize = 512;
/// Header text limit (characters, template text and runtime value).
pub const MAX_HEADER_TEXT: usize = 60;
/// Body text limit (characters; the rendered body counts).
pub const MAX_BODY_TEXT: usize = 1024;
/// Carousel card body text limit.
pub const MAX_CARD_BODY_TEXT: usize = 160;
/// Footer text limit.
pub const MAX_FOOTER_TEXT: usize = 60;
/// Button label limit.
pub const MAX_BUTTON_TEXT: usize = 25;
/// Button URL limit.
pub const MAX_URL: usize = 2000;
/// Phone-number button number limit.
pub const MAX_BUTTON_PHONE: usize = 20;
/// Buttons per template.
pub const MAX_BUTTONS: usize = 10;
/// Copy-code value limit.
pub const MAX_COPY_CODE: usize = 15;
/// Limited-time-offer text limit.
pub const MAX_LTO_TEXT: usize = 16;
/// Fewest carousel cards.
pub const MIN_CARDS: usize = 2;
/// Most carousel cards.
pub const MAX_CARDS: usize = 10;
