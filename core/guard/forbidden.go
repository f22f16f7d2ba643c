package guard

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
)

// forbiddenMethods are never allowed for any source but the owner: they
// fake counters, destroy the account, take it over, or cut the owner out.
var forbiddenMethods = map[uint32]string{
	// Deleting the account.
	tg.AccountDeleteAccountRequestTypeID: "deletes the account",
	// 2FA and phone: whoever changes them owns the account.
	tg.AccountUpdatePasswordSettingsRequestTypeID: "changes the 2FA password",
	tg.AccountResetPasswordRequestTypeID:          "resets the 2FA password",
	tg.AccountChangePhoneRequestTypeID:            "changes the phone number",
	tg.AccountSendChangePhoneCodeRequestTypeID:    "starts a phone number change",
	// Exporting sessions: each one hands the account to someone else.
	tg.AuthExportAuthorizationRequestTypeID:   "exports the session to another data center or client",
	tg.AuthImportAuthorizationRequestTypeID:   "imports an exported session",
	tg.AuthAcceptLoginTokenRequestTypeID:      "logs another device in (QR login)",
	tg.AuthExportLoginTokenRequestTypeID:      "starts a QR login",
	tg.AuthImportLoginTokenRequestTypeID:      "completes a QR login",
	tg.AuthBindTempAuthKeyRequestTypeID:       "binds a temporary auth key",
	tg.AccountInitTakeoutSessionRequestTypeID: "starts a data export (takeout) session",
	// Terminating sessions, this one included.
	tg.AuthLogOutRequestTypeID:                         "logs the runner out",
	tg.AuthResetAuthorizationsRequestTypeID:            "terminates every other session",
	tg.AccountResetAuthorizationRequestTypeID:          "terminates another session",
	tg.AccountResetWebAuthorizationsRequestTypeID:      "terminates every web login",
	tg.AccountResetWebAuthorizationRequestTypeID:       "terminates a web login",
	tg.AccountSetAuthorizationTTLRequestTypeID:         "changes when inactive sessions are terminated",
	tg.AuthDropTempAuthKeysRequestTypeID:               "drops temporary auth keys",
	tg.AccountChangeAuthorizationSettingsRequestTypeID: "changes another session's settings",
}

// wrapperMethods carry another query inside. raw_invoke never needs them,
// and they could hide a forbidden method, so they are refused outright.
var wrapperMethods = map[uint32]bool{
	tg.InvokeAfterMsgRequestTypeID:                true,
	tg.InvokeAfterMsgsRequestTypeID:               true,
	tg.InitConnectionRequestTypeID:                true,
	tg.InvokeWithLayerRequestTypeID:               true,
	tg.InvokeWithoutUpdatesRequestTypeID:          true,
	tg.InvokeWithMessagesRangeRequestTypeID:       true,
	tg.InvokeWithTakeoutRequestTypeID:             true,
	tg.InvokeWithBusinessConnectionRequestTypeID:  true,
	tg.InvokeWithGooglePlayIntegrityRequestTypeID: true,
	tg.InvokeWithApnsSecretRequestTypeID:          true,
	tg.InvokeWithReCaptchaRequestTypeID:           true,
}

// Daily-counted classes of raw methods.
const (
	classJoin   = "joins"
	classInvite = "invites"
	classImport = "contact_imports"
	classSend   = "send"
)

var methodClasses = map[uint32]string{
	tg.ChannelsJoinChannelRequestTypeID:         classJoin,
	tg.MessagesImportChatInviteRequestTypeID:    classJoin,
	tg.ChatlistsJoinChatlistInviteRequestTypeID: classJoin,
	tg.ChannelsInviteToChannelRequestTypeID:     classInvite,
	tg.MessagesAddChatUserRequestTypeID:         classInvite,
	tg.ContactsImportContactsRequestTypeID:      classImport,
	tg.MessagesSendMessageRequestTypeID:         classSend,
	tg.MessagesSendMediaRequestTypeID:           classSend,
	tg.MessagesSendMultiMediaRequestTypeID:      classSend,
	tg.MessagesForwardMessagesRequestTypeID:     classSend,
}

var typeNames = sync.OnceValue(tg.TypesMap)

// constructorID is the TL constructor of a serialized request.
func constructorID(requestTL []byte) (uint32, bool) {
	if len(requestTL) < 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(requestTL), true
}

// MethodName names the TL method of a serialized request, such as
// "messages.sendMessage", or "#1234abcd" for a constructor the schema does
// not know, or "" for fewer than 4 bytes.
func MethodName(requestTL []byte) string {
	id, ok := constructorID(requestTL)
	if !ok {
		return ""
	}
	if n, ok := typeNames()[id]; ok {
		name, _, _ := strings.Cut(n, "#")
		return name
	}
	return fmt.Sprintf("#%08x", id)
}

// ForbiddenMethod reports whether a serialized TL request (raw_invoke's
// request_tl) is a method the guard never lets anyone but the owner call,
// and names it. It decodes messages.getMessagesViews to look at increment:
// reading view counts is fine, inflating them is not. A request too short
// to carry a constructor id, and any invokeWith*/initConnection wrapper, is
// forbidden too: the guard cannot see what it would do.
func ForbiddenMethod(requestTL []byte) (name string, forbidden bool) {
	name = MethodName(requestTL)
	_, why := forbiddenReason(requestTL)
	return name, why != ""
}

// forbiddenReason returns the method's name and why it is refused ("" when
// it is allowed).
func forbiddenReason(requestTL []byte) (name, why string) {
	id, ok := constructorID(requestTL)
	if !ok {
		return "", "the request is shorter than a TL constructor id"
	}
	name = MethodName(requestTL)
	if r, ok := forbiddenMethods[id]; ok {
		return name, r
	}
	if wrapperMethods[id] {
		return name, "wraps another query the guard cannot inspect; send the inner request"
	}
	if id == tg.MessagesGetMessagesViewsRequestTypeID {
		var req tg.MessagesGetMessagesViewsRequest
		if err := req.Decode(&bin.Buffer{Buf: append([]byte(nil), requestTL...)}); err != nil {
			return name, "cannot be decoded to check its increment flag: " + err.Error()
		}
		if req.Increment {
			return name, "inflates view counters (increment=true)"
		}
	}
	return name, ""
}

// methodClass is the daily-counted class of a raw request ("" for none).
func methodClass(requestTL []byte) string {
	id, ok := constructorID(requestTL)
	if !ok {
		return ""
	}
	return methodClasses[id]
}
