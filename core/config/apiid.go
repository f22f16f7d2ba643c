package config

import "github.com/gotd/td/constant"

// publishedAPIIDs are api_ids whose api_hash is public: gotd's TestAppID and
// those of the official apps, shipped in their open source code. Telegram
// limits them server-side (API_ID_PUBLISHED_FLOOD); an unofficial client
// using one also looks like an impersonation of the official app. Sources:
// gotd/td constant/credentials.go (17349, from tdesktop's
// docs/api_credentials.md); tdesktop's boxes/sessions_box.cpp lists of
// official ids; the api_hash values published in the apps' repositories
// (DrKLO/Telegram BuildVars, TelegramMessenger/Telegram-iOS, webogram,
// tdesktop, TelegramSwift, Telegram X).
var publishedAPIIDs = map[int]string{
	4:                  "Telegram for Android (source release)",
	5:                  "Telegram for Android",
	6:                  "Telegram for Android (Google Play)",
	8:                  "Telegram for iOS (beta)",
	9:                  "Telegram public beta",
	2040:               "Telegram Desktop",
	2496:               "Telegram Web (webogram)",
	2834:               "Telegram for macOS",
	2899:               "Telegram CLI",
	10840:              "Telegram for iOS",
	16623:              "Plus Messenger",
	constant.TestAppID: "gotd's telegram.TestAppID, TDLib's sample credentials",
	21724:              "Telegram X for Android",
	94575:              "Nicegram",
	611335:             "Telegram Desktop (snap)",
	1025907:            "Telegram Web K",
}

// PublishedAPIID reports whether id is a published api_id, and whose it is.
func PublishedAPIID(id int) (app string, ok bool) {
	app, ok = publishedAPIIDs[id]
	return app, ok
}
