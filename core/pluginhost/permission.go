package pluginhost

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/gotd/td/tg"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// ErrUnknownChat is wrapped by ChatResolver errors for peers the account
// does not know.
var ErrUnknownChat = errors.New("unknown chat")

// actionInfo says what permission an action needs and which chats it
// touches.
type actionInfo struct {
	// name is the permission name; "" for actions that need none (kv_*,
	// get_me).
	name  string
	chats []*pluginv1.Peer
	// anyChat: the action targets a chat the host cannot name up front (a
	// join by invite link); it needs the "*" chat grant.
	anyChat bool
	kv      bool
}

func describeAction(a *pluginv1.Action) (actionInfo, error) {
	switch k := a.GetKind().(type) {
	case *pluginv1.Action_Send:
		return actionInfo{name: "send", chats: peers(k.Send.GetChat())}, nil
	case *pluginv1.Action_Edit:
		return actionInfo{name: "edit", chats: peers(k.Edit.GetChat())}, nil
	case *pluginv1.Action_Delete:
		return actionInfo{name: "delete", chats: peers(k.Delete.GetChat())}, nil
	case *pluginv1.Action_Forward:
		return actionInfo{name: "forward", chats: peers(k.Forward.GetFromChat(), k.Forward.GetToChat())}, nil
	case *pluginv1.Action_React:
		return actionInfo{name: "react", chats: peers(k.React.GetChat())}, nil
	case *pluginv1.Action_MarkRead:
		return actionInfo{name: "read_history", chats: peers(k.MarkRead.GetChat())}, nil
	case *pluginv1.Action_Typing:
		return actionInfo{name: "typing", chats: peers(k.Typing.GetChat())}, nil
	case *pluginv1.Action_History:
		return actionInfo{name: "history", chats: peers(k.History.GetChat())}, nil
	case *pluginv1.Action_GetMessages:
		return actionInfo{name: "history", chats: peers(k.GetMessages.GetChat())}, nil
	case *pluginv1.Action_Resolve:
		return actionInfo{name: "resolve"}, nil
	case *pluginv1.Action_GetChat:
		return actionInfo{name: "resolve", chats: peers(k.GetChat.GetChat())}, nil
	case *pluginv1.Action_GetMe:
		return actionInfo{}, nil
	case *pluginv1.Action_Download:
		return actionInfo{name: "download", chats: peers(k.Download.GetChat())}, nil
	case *pluginv1.Action_SendMedia:
		return actionInfo{name: "upload", chats: peers(k.SendMedia.GetChat())}, nil
	case *pluginv1.Action_Join:
		if k.Join.GetChat() != nil {
			return actionInfo{name: "join", chats: peers(k.Join.GetChat())}, nil
		}
		return actionInfo{name: "join", anyChat: true}, nil
	case *pluginv1.Action_Leave:
		return actionInfo{name: "leave", chats: peers(k.Leave.GetChat())}, nil
	case *pluginv1.Action_RawInvoke:
		return actionInfo{name: "raw_invoke"}, nil
	case *pluginv1.Action_KvGet, *pluginv1.Action_KvSet, *pluginv1.Action_KvDelete, *pluginv1.Action_KvList:
		return actionInfo{kv: true}, nil
	case *pluginv1.Action_RunnerStatus, *pluginv1.Action_Pause, *pluginv1.Action_Resume, *pluginv1.Action_ListPlugins:
		return actionInfo{name: "runner_control"}, nil
	case nil:
		return actionInfo{}, errors.New("empty action")
	default:
		return actionInfo{}, fmt.Errorf("action %T is not known to this runner", k)
	}
}

// peers collects the chats an action names. A missing chat is kept as nil
// so the check refuses it with a clear message.
func peers(ps ...*pluginv1.Peer) []*pluginv1.Peer { return ps }

// permissions is a compiled Grants.
type permissions struct {
	actions map[string]bool
	chats   []ChatRef
}

func newPermissions(g Grants) permissions {
	p := permissions{actions: map[string]bool{}, chats: g.Chats}
	for _, a := range g.Actions {
		p.actions[a] = true
	}
	return p
}

// denial is why an action was refused.
type denial struct {
	code   pluginv1.ErrorCode
	chat   string
	reason string
}

// check decides whether the plugin may run the action. It returns nil when
// it may.
func (p permissions) check(ctx context.Context, res ChatResolver, info actionInfo, a *pluginv1.Action) *denial {
	if info.name == "" {
		return nil
	}
	if !p.actions[info.name] {
		return &denial{code: pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN, reason: fmt.Sprintf("action %q is not granted", info.name)}
	}
	if info.anyChat && !slices.ContainsFunc(p.chats, func(r ChatRef) bool { return r.Kind == ChatAny }) {
		return &denial{code: pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN, reason: fmt.Sprintf("%s by invite link needs the chat grant \"*\"", info.name)}
	}
	for _, peer := range info.chats {
		if peer == nil || peer.GetId() == 0 || peer.GetKind() == pluginv1.PeerKind_PEER_KIND_UNSPECIFIED {
			return &denial{code: pluginv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, reason: fmt.Sprintf("%s: missing or malformed chat", info.name)}
		}
		if d := p.checkChat(ctx, res, peer); d != nil {
			d.reason = fmt.Sprintf("%s: %s", info.name, d.reason)
			return d
		}
	}
	if raw, ok := a.GetKind().(*pluginv1.Action_RawInvoke); ok {
		return checkRawInvoke(raw.RawInvoke.GetRequestTl())
	}
	return nil
}

func (p permissions) checkChat(ctx context.Context, res ChatResolver, peer *pluginv1.Peer) *denial {
	needChat := false
	for _, r := range p.chats {
		switch {
		case r.Kind == ChatAny:
			return nil
		case r.Peer != nil:
			if r.Peer.GetKind() == peer.GetKind() && r.Peer.GetId() == peer.GetId() {
				return nil
			}
		default:
			needChat = true
		}
	}
	chat := PeerString(peer)
	if !needChat {
		return &denial{code: pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN, chat: chat, reason: fmt.Sprintf("chat %s is not granted", chat)}
	}
	if res == nil {
		return &denial{code: pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN, chat: chat, reason: fmt.Sprintf("chat %s: no resolver to check grants by kind or username", chat)}
	}
	info, err := res.Chat(ctx, peer)
	if err != nil {
		if errors.Is(err, ErrUnknownChat) {
			return &denial{code: pluginv1.ErrorCode_ERROR_CODE_NOT_FOUND, chat: chat, reason: fmt.Sprintf("chat %s is not known to the account", chat)}
		}
		return &denial{code: pluginv1.ErrorCode_ERROR_CODE_INTERNAL, chat: chat, reason: fmt.Sprintf("chat %s: %v", chat, err)}
	}
	if chatMatchesAny(info, p.chats) {
		return nil
	}
	return &denial{code: pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN, chat: chat, reason: fmt.Sprintf("chat %s is not granted", chat)}
}

// rawInvokeDenied are TL methods a plugin may never call, even with the
// raw_invoke grant: they delete the account, log it out, hand out or revoke
// authorizations, or change the password, phone number or login email. The
// invoke wrappers are refused too, since they would hide the inner method
// from this check.
var rawInvokeDenied = map[uint32]string{
	tg.AccountDeleteAccountRequestTypeID:               "account.deleteAccount",
	tg.AccountSetAccountTTLRequestTypeID:               "account.setAccountTTL",
	tg.AuthLogOutRequestTypeID:                         "auth.logOut",
	tg.AuthResetAuthorizationsRequestTypeID:            "auth.resetAuthorizations",
	tg.AccountResetAuthorizationRequestTypeID:          "account.resetAuthorization",
	tg.AccountGetAuthorizationsRequestTypeID:           "account.getAuthorizations",
	tg.AccountSetAuthorizationTTLRequestTypeID:         "account.setAuthorizationTTL",
	tg.AccountChangeAuthorizationSettingsRequestTypeID: "account.changeAuthorizationSettings",
	tg.AccountGetWebAuthorizationsRequestTypeID:        "account.getWebAuthorizations",
	tg.AccountResetWebAuthorizationRequestTypeID:       "account.resetWebAuthorization",
	tg.AccountResetWebAuthorizationsRequestTypeID:      "account.resetWebAuthorizations",
	tg.AccountInvalidateSignInCodesRequestTypeID:       "account.invalidateSignInCodes",
	tg.AuthExportAuthorizationRequestTypeID:            "auth.exportAuthorization",
	tg.AuthImportAuthorizationRequestTypeID:            "auth.importAuthorization",
	tg.AuthExportLoginTokenRequestTypeID:               "auth.exportLoginToken",
	tg.AuthImportLoginTokenRequestTypeID:               "auth.importLoginToken",
	tg.AuthAcceptLoginTokenRequestTypeID:               "auth.acceptLoginToken",
	tg.AuthBindTempAuthKeyRequestTypeID:                "auth.bindTempAuthKey",
	tg.AuthDropTempAuthKeysRequestTypeID:               "auth.dropTempAuthKeys",
	tg.AuthImportBotAuthorizationRequestTypeID:         "auth.importBotAuthorization",
	tg.AuthImportWebTokenAuthorizationRequestTypeID:    "auth.importWebTokenAuthorization",
	tg.AuthSendCodeRequestTypeID:                       "auth.sendCode",
	tg.AuthResendCodeRequestTypeID:                     "auth.resendCode",
	tg.AuthCancelCodeRequestTypeID:                     "auth.cancelCode",
	tg.AuthSignInRequestTypeID:                         "auth.signIn",
	tg.AuthSignUpRequestTypeID:                         "auth.signUp",
	tg.AuthCheckPasswordRequestTypeID:                  "auth.checkPassword",
	tg.AuthRequestPasswordRecoveryRequestTypeID:        "auth.requestPasswordRecovery",
	tg.AuthRecoverPasswordRequestTypeID:                "auth.recoverPassword",
	tg.AuthCheckRecoveryPasswordRequestTypeID:          "auth.checkRecoveryPassword",
	tg.AuthRequestFirebaseSMSRequestTypeID:             "auth.requestFirebaseSms",
	tg.AuthReportMissingCodeRequestTypeID:              "auth.reportMissingCode",
	tg.AuthResetLoginEmailRequestTypeID:                "auth.resetLoginEmail",
	tg.AccountGetPasswordRequestTypeID:                 "account.getPassword",
	tg.AccountGetPasswordSettingsRequestTypeID:         "account.getPasswordSettings",
	tg.AccountUpdatePasswordSettingsRequestTypeID:      "account.updatePasswordSettings",
	tg.AccountGetTmpPasswordRequestTypeID:              "account.getTmpPassword",
	tg.AccountResetPasswordRequestTypeID:               "account.resetPassword",
	tg.AccountDeclinePasswordResetRequestTypeID:        "account.declinePasswordReset",
	tg.AccountConfirmPasswordEmailRequestTypeID:        "account.confirmPasswordEmail",
	tg.AccountResendPasswordEmailRequestTypeID:         "account.resendPasswordEmail",
	tg.AccountCancelPasswordEmailRequestTypeID:         "account.cancelPasswordEmail",
	tg.AccountSendVerifyEmailCodeRequestTypeID:         "account.sendVerifyEmailCode",
	tg.AccountVerifyEmailRequestTypeID:                 "account.verifyEmail",
	tg.AccountSendChangePhoneCodeRequestTypeID:         "account.sendChangePhoneCode",
	tg.AccountChangePhoneRequestTypeID:                 "account.changePhone",
	tg.AccountSendConfirmPhoneCodeRequestTypeID:        "account.sendConfirmPhoneCode",
	tg.AccountConfirmPhoneRequestTypeID:                "account.confirmPhone",
	tg.AccountSendVerifyPhoneCodeRequestTypeID:         "account.sendVerifyPhoneCode",
	tg.AccountVerifyPhoneRequestTypeID:                 "account.verifyPhone",
	tg.AccountInitTakeoutSessionRequestTypeID:          "account.initTakeoutSession",
	tg.AccountFinishTakeoutSessionRequestTypeID:        "account.finishTakeoutSession",
	tg.InvokeAfterMsgRequestTypeID:                     "invokeAfterMsg",
	tg.InvokeAfterMsgsRequestTypeID:                    "invokeAfterMsgs",
	tg.InitConnectionRequestTypeID:                     "initConnection",
	tg.InvokeWithLayerRequestTypeID:                    "invokeWithLayer",
	tg.InvokeWithoutUpdatesRequestTypeID:               "invokeWithoutUpdates",
	tg.InvokeWithMessagesRangeRequestTypeID:            "invokeWithMessagesRange",
	tg.InvokeWithTakeoutRequestTypeID:                  "invokeWithTakeout",
	tg.InvokeWithBusinessConnectionRequestTypeID:       "invokeWithBusinessConnection",
	tg.InvokeWithGooglePlayIntegrityRequestTypeID:      "invokeWithGooglePlayIntegrity",
	tg.InvokeWithApnsSecretRequestTypeID:               "invokeWithApnsSecret",
	tg.InvokeWithReCaptchaRequestTypeID:                "invokeWithReCaptcha",
}

// checkRawInvoke refuses TL requests on the deny list. The constructor id
// is the first 4 bytes of the request, little endian.
func checkRawInvoke(req []byte) *denial {
	if len(req) < 4 {
		return &denial{code: pluginv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, reason: "raw_invoke: request_tl is shorter than a constructor id"}
	}
	id := binary.LittleEndian.Uint32(req)
	if name, ok := rawInvokeDenied[id]; ok {
		return &denial{code: pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN, reason: fmt.Sprintf("raw_invoke: %s (%#08x) is never allowed to plugins", name, id)}
	}
	return nil
}

// rawMethodName names a TL constructor for the audit log, when tg knows it.
func rawMethodName(req []byte) string {
	if len(req) < 4 {
		return ""
	}
	id := binary.LittleEndian.Uint32(req)
	if name, ok := tlNames()[id]; ok {
		return name
	}
	return fmt.Sprintf("%#08x", id)
}

// tlNames is built on first use: tg.TypesMap allocates a map of every TL
// type.
var tlNames = sync.OnceValue(tg.TypesMap)
