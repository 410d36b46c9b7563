//! The language of what the CLI writes for people: English, or Chinese for the government staff
//! who use erhai (`--lang zh`, or a `zh…` locale in `ERHAI_LANG`, `LC_ALL`, `LC_MESSAGES` or
//! `LANG`). Rule names, states, ids, figures and JSON stay the same in every language, so that
//! scripts, audits and the server's refusals read alike whoever prints them.

use std::sync::OnceLock;

/// A language of the CLI's own text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// 简体中文.
    Zh,
}

static CURRENT: OnceLock<Lang> = OnceLock::new();

impl Lang {
    /// The language asked for on the command line, else the first locale variable that is set.
    pub fn detect(asked: Option<Lang>) -> Lang {
        if let Some(l) = asked {
            return l;
        }
        ["ERHAI_LANG", "LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|v| !v.is_empty())
            .map(|v| Lang::of_locale(&v))
            .unwrap_or_default()
    }

    /// `zh_CN.UTF-8`, `zh-Hans`, `zh` → Chinese; anything else → English.
    pub fn of_locale(locale: &str) -> Lang {
        let l = locale.trim().to_ascii_lowercase();
        if l == "zh" || l.starts_with("zh_") || l.starts_with("zh-") || l.starts_with("zh.") {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// Sets the process's language once, at startup (later calls keep the first).
    pub fn set_current(self) {
        let _ = CURRENT.set(self);
    }

    /// The process's language (English until set).
    pub fn current() -> Lang {
        CURRENT.get().copied().unwrap_or_default()
    }

    /// The text for this language.
    pub fn pick(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    /// The `lang` attribute of an HTML page.
    pub fn html(self) -> &'static str {
        self.pick("en", "zh-CN")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_choose_the_language() {
        for zh in ["zh_CN.UTF-8", "zh-Hans", "ZH", "zh_TW", "zh.UTF-8"] {
            assert_eq!(Lang::of_locale(zh), Lang::Zh, "{zh}");
        }
        for en in ["en_US.UTF-8", "C", "POSIX", "zhx", ""] {
            assert_eq!(Lang::of_locale(en), Lang::En, "{en}");
        }
        assert_eq!(Lang::detect(Some(Lang::Zh)), Lang::Zh);
    }
}
