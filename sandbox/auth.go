package sandbox

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"strings"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/crypto"
	"github.com/gotd/td/crypto/srp"
	"github.com/gotd/td/proto"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
	"github.com/gotd/td/tgtest"
)

// Accounts and authorization: phone login with Telegram's test-number
// convention, sign-up, 2FA with SRP, QR login and log out.

var (
	errPhoneInvalid        = tgerr.New(400, "PHONE_NUMBER_INVALID")
	errPhoneCodeInvalid    = tgerr.New(400, "PHONE_CODE_INVALID")
	errPhoneCodeExpired    = tgerr.New(400, "PHONE_CODE_EXPIRED")
	errPhoneUnoccupied     = tgerr.New(400, "PHONE_NUMBER_UNOCCUPIED")
	errPhoneOccupied       = tgerr.New(400, "PHONE_NUMBER_OCCUPIED")
	errPasswordNeeded      = tgerr.New(401, "SESSION_PASSWORD_NEEDED")
	errPasswordHashInvalid = tgerr.New(400, "PASSWORD_HASH_INVALID")
	errSRPIDInvalid        = tgerr.New(400, "SRP_ID_INVALID")
	errAuthTokenInvalid    = tgerr.New(400, "AUTH_TOKEN_INVALID")
	errAuthTokenExpired    = tgerr.New(400, "AUTH_TOKEN_EXPIRED")
	errFirstNameInvalid    = tgerr.New(400, "FIRSTNAME_INVALID")
)

type pendingCode struct {
	code    string
	hash    string
	expires time.Time
}

// loginToken is an exported QR login token.
type loginToken struct {
	token      string
	key        crypto.AuthKey
	sessionID  int64
	expires    time.Time
	acceptedBy int64
}

// normalizePhone keeps digits only.
func normalizePhone(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// testNumberCode implements Telegram's test numbers: 99966XYYYY logs in
// with XXXXX.
func testNumberCode(phone string) (string, bool) {
	if len(phone) == 10 && strings.HasPrefix(phone, "99966") {
		return strings.Repeat(phone[5:6], 5), true
	}
	return "", false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomCode() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := binary.LittleEndian.Uint32(b[:]) % 90000
	return strings.TrimLeft(big.NewInt(int64(10000+n)).String(), "")
}

// LoginCode returns the code the server sent to phone by auth.sendCode.
func (s *Server) LoginCode(phone string) (string, bool) {
	phone = normalizePhone(phone)
	s.mu.Lock()
	defer s.mu.Unlock()
	pc, ok := s.codes[phone]
	if !ok {
		return "", false
	}
	return pc.code, true
}

func (s *Server) authorizeKeyLocked(c *call, userID int64) {
	ks := s.keys[c.key.ID]
	if ks == nil {
		ks = &keyState{}
		s.keys[c.key.ID] = ks
	}
	ks.userID = userID
	ks.pendingUser = 0
	c.userID = userID
	if c.sessionID != 0 && !s.closed {
		s.touchSessionLocked(c.sessionID, c.key, userID)
	}
}

func (s *Server) authorizationLocked(userID int64) *tg.AuthAuthorization {
	return &tg.AuthAuthorization{User: s.userObjLocked(userID, userID)}
}

func (s *Server) registerAuth() {
	on(s, tg.HelpGetConfigRequestTypeID, false, func(c *call, _ *tg.HelpGetConfigRequest) (bin.Encoder, error) {
		return s.config(), nil
	})
	on(s, tg.HelpGetNearestDCRequestTypeID, false, func(c *call, _ *tg.HelpGetNearestDCRequest) (bin.Encoder, error) {
		return &tg.NearestDC{Country: "XX", ThisDC: s.opts.DC, NearestDC: s.opts.DC}, nil
	})
	on(s, tg.AuthSendCodeRequestTypeID, false, func(c *call, req *tg.AuthSendCodeRequest) (bin.Encoder, error) {
		phone := normalizePhone(req.PhoneNumber)
		if len(phone) < 5 {
			return nil, errPhoneInvalid
		}
		code, ok := testNumberCode(phone)
		if !ok {
			code = randomCode()
		}
		pc := &pendingCode{code: code, hash: randomHex(8), expires: time.Now().Add(5 * time.Minute)}
		s.mu.Lock()
		s.codes[phone] = pc
		s.mu.Unlock()
		return &tg.AuthSentCode{
			Type:          &tg.AuthSentCodeTypeApp{Length: len(code)},
			PhoneCodeHash: pc.hash,
			Timeout:       60,
		}, nil
	})
	checkCode := func(phone, hash, code string) error {
		pc, ok := s.codes[phone]
		if !ok || pc.hash != hash {
			return errPhoneCodeExpired
		}
		if time.Now().After(pc.expires) {
			return errPhoneCodeExpired
		}
		if pc.code != code {
			return errPhoneCodeInvalid
		}
		return nil
	}
	on(s, tg.AuthSignInRequestTypeID, false, func(c *call, req *tg.AuthSignInRequest) (bin.Encoder, error) {
		phone := normalizePhone(req.PhoneNumber)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := checkCode(phone, req.PhoneCodeHash, req.PhoneCode); err != nil {
			return nil, err
		}
		id, ok := s.byPhone[phone]
		if !ok {
			return &tg.AuthAuthorizationSignUpRequired{}, nil
		}
		if s.accounts[id].password != nil {
			ks := s.keys[c.key.ID]
			if ks == nil {
				ks = &keyState{}
				s.keys[c.key.ID] = ks
			}
			ks.pendingUser = id
			return nil, errPasswordNeeded
		}
		delete(s.codes, phone)
		s.authorizeKeyLocked(c, id)
		return s.authorizationLocked(id), nil
	})
	on(s, tg.AuthSignUpRequestTypeID, false, func(c *call, req *tg.AuthSignUpRequest) (bin.Encoder, error) {
		phone := normalizePhone(req.PhoneNumber)
		if strings.TrimSpace(req.FirstName) == "" {
			return nil, errFirstNameInvalid
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := checkCode(phone, req.PhoneCodeHash, ""); err != nil && err != errPhoneCodeInvalid {
			return nil, err
		}
		if _, ok := s.byPhone[phone]; ok {
			return nil, errPhoneOccupied
		}
		acc, err := s.createAccountLocked(UserSpec{Phone: phone, FirstName: req.FirstName, LastName: req.LastName})
		if err != nil {
			return nil, err
		}
		delete(s.codes, phone)
		s.authorizeKeyLocked(c, acc.id)
		return s.authorizationLocked(acc.id), nil
	})
	on(s, tg.AuthLogOutRequestTypeID, true, func(c *call, _ *tg.AuthLogOutRequest) (bin.Encoder, error) {
		s.mu.Lock()
		delete(s.keys, c.key.ID)
		var drop []*liveSession
		for _, ls := range s.byUser[c.userID] {
			if ls.key.ID == c.key.ID {
				drop = append(drop, ls)
			}
		}
		for _, ls := range drop {
			s.removeSessionLocked(ls)
		}
		s.mu.Unlock()
		return &tg.AuthLoggedOut{}, nil
	})

	// 2FA.
	on(s, tg.AccountGetPasswordRequestTypeID, false, func(c *call, _ *tg.AccountGetPasswordRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		uid := c.userID
		if uid == 0 {
			if ks := s.keys[c.key.ID]; ks != nil {
				uid = ks.pendingUser
			}
		}
		secureRandom := make([]byte, 32)
		_, _ = rand.Read(secureRandom)
		newAlgo := &tg.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow{
			Salt1: randomBytes(8), Salt2: randomBytes(16), G: srpG, P: srpP.Bytes(),
		}
		res := &tg.AccountPassword{
			NewAlgo:       newAlgo,
			NewSecureAlgo: &tg.SecurePasswordKdfAlgoPBKDF2HMACSHA512iter100000{Salt: randomBytes(8)},
			SecureRandom:  secureRandom,
		}
		acc := s.accounts[uid]
		if acc == nil || acc.password == nil {
			return res, nil
		}
		pw := acc.password
		if err := pw.newChallenge(); err != nil {
			return nil, err
		}
		res.HasPassword = true
		res.CurrentAlgo = &tg.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow{
			Salt1: pw.salt1, Salt2: pw.salt2, G: srpG, P: srpP.Bytes(),
		}
		res.SRPB = pw.bBytes()
		res.SRPID = pw.srpID
		res.Hint = pw.hint
		return res, nil
	})
	on(s, tg.AuthCheckPasswordRequestTypeID, false, func(c *call, req *tg.AuthCheckPasswordRequest) (bin.Encoder, error) {
		in, ok := req.Password.(*tg.InputCheckPasswordSRP)
		if !ok {
			return nil, errPasswordHashInvalid
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		ks := s.keys[c.key.ID]
		if ks == nil || ks.pendingUser == 0 {
			return nil, errAuthKeyUnregistered
		}
		acc := s.accounts[ks.pendingUser]
		if acc == nil || acc.password == nil {
			return nil, errPasswordHashInvalid
		}
		if err := acc.password.verify(in); err != nil {
			return nil, err
		}
		for phone := range s.codes {
			if s.byPhone[phone] == acc.id {
				delete(s.codes, phone)
			}
		}
		s.authorizeKeyLocked(c, acc.id)
		return s.authorizationLocked(acc.id), nil
	})

	// QR login.
	on(s, tg.AuthExportLoginTokenRequestTypeID, false, func(c *call, _ *tg.AuthExportLoginTokenRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ks := s.keys[c.key.ID]
		if ks == nil {
			ks = &keyState{}
			s.keys[c.key.ID] = ks
		}
		if lt := s.loginTokens[ks.loginToken]; lt != nil && lt.acceptedBy != 0 {
			delete(s.loginTokens, lt.token)
			ks.loginToken = ""
			s.authorizeKeyLocked(c, lt.acceptedBy)
			return &tg.AuthLoginTokenSuccess{Authorization: s.authorizationLocked(lt.acceptedBy)}, nil
		}
		if ks.userID != 0 {
			return &tg.AuthLoginTokenSuccess{Authorization: s.authorizationLocked(ks.userID)}, nil
		}
		delete(s.loginTokens, ks.loginToken)
		lt := &loginToken{
			token:     randomHex(16),
			key:       c.key,
			sessionID: c.sessionID,
			expires:   time.Now().Add(30 * time.Second),
		}
		s.loginTokens[lt.token] = lt
		ks.loginToken = lt.token
		return &tg.AuthLoginToken{Expires: int(lt.expires.Unix()), Token: []byte(lt.token)}, nil
	})
	on(s, tg.AuthAcceptLoginTokenRequestTypeID, true, func(c *call, req *tg.AuthAcceptLoginTokenRequest) (bin.Encoder, error) {
		s.mu.Lock()
		lt := s.loginTokens[string(req.Token)]
		if lt == nil {
			s.mu.Unlock()
			return nil, errAuthTokenInvalid
		}
		if time.Now().After(lt.expires) {
			delete(s.loginTokens, lt.token)
			s.mu.Unlock()
			return nil, errAuthTokenExpired
		}
		lt.acceptedBy = c.userID
		s.mu.Unlock()
		// The exporting key is not authorized yet, so it has no push queue:
		// tell its session directly, as Telegram does with updateLoginToken.
		go func() {
			_ = s.tg.Send(s.ctx, tgtest.Session{ID: lt.sessionID, AuthKey: lt.key}, proto.MessageFromServer,
				&tg.UpdateShort{Update: &tg.UpdateLoginToken{}, Date: int(time.Now().Unix())})
		}()
		now := int(time.Now().Unix())
		return &tg.Authorization{
			Hash: 1, DeviceModel: "sandbox", Platform: "sandbox", SystemVersion: "1", AppName: "sandbox",
			AppVersion: "1", DateCreated: now, DateActive: now, IP: "127.0.0.1", Country: "XX", Region: "XX",
		}, nil
	})
	on(s, tg.AuthImportLoginTokenRequestTypeID, false, func(c *call, req *tg.AuthImportLoginTokenRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		lt := s.loginTokens[string(req.Token)]
		if lt == nil || lt.acceptedBy == 0 {
			return nil, errAuthTokenInvalid
		}
		delete(s.loginTokens, lt.token)
		s.authorizeKeyLocked(c, lt.acceptedBy)
		return &tg.AuthLoginTokenSuccess{Authorization: s.authorizationLocked(lt.acceptedBy)}, nil
	})
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// SRP (https://core.telegram.org/api/srp), server side. gotd's client
// computes A and M1; the server keeps v = g^x and checks M1.

const srpG = 3

var srpP, _ = new(big.Int).SetString(
	"C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F"+
		"48198A0AA7C14058229493D22530F4DBFA336F6E0AC925139543AED44CCE7C37"+
		"20FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64"+
		"2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4"+
		"A4A695811051907E162753B56B0F6B410DBA74D8A84B2A14B3144E0EF1284754"+
		"FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4"+
		"E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F"+
		"0D8115F635B105EE2E4E15D04B2454BF6F4FADF034B10403119CD8E3B92FCC5B", 16)

type srpPassword struct {
	salt1, salt2 []byte
	v            *big.Int
	hint         string
	// current challenge
	srpID int64
	b     *big.Int
	gb    *big.Int
}

func newSRPPassword(password, hint string) (*srpPassword, error) {
	salt1 := randomBytes(8)
	salt2 := randomBytes(16)
	hash, newSalt1, err := srp.NewSRP(rand.Reader).NewHash([]byte(password), srp.Input{
		Salt1: salt1, Salt2: salt2, G: srpG, P: srpP.Bytes(),
	})
	if err != nil {
		return nil, err
	}
	return &srpPassword{salt1: newSalt1, salt2: salt2, v: new(big.Int).SetBytes(hash), hint: hint}, nil
}

func pad256(i *big.Int) []byte {
	out := make([]byte, 256)
	i.FillBytes(out)
	return out
}

func sha(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func (p *srpPassword) k() *big.Int {
	return new(big.Int).SetBytes(sha(srpP.Bytes(), pad256(big.NewInt(srpG))))
}

func (p *srpPassword) newChallenge() error {
	b, err := rand.Int(rand.Reader, srpP)
	if err != nil {
		return err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	p.b = b
	p.srpID = int64(binary.LittleEndian.Uint64(id[:]) &^ (1 << 63))
	// B = (k*v + g^b) mod p
	kv := new(big.Int).Mul(p.k(), p.v)
	gb := new(big.Int).Exp(big.NewInt(srpG), b, srpP)
	p.gb = kv.Add(kv, gb).Mod(kv, srpP)
	return nil
}

func (p *srpPassword) bBytes() []byte { return pad256(p.gb) }

func (p *srpPassword) verify(in *tg.InputCheckPasswordSRP) error {
	if p.b == nil || in.SRPID != p.srpID {
		return errSRPIDInvalid
	}
	// One answer per challenge, like Telegram.
	b, gb := p.b, p.gb
	p.b, p.gb = nil, nil
	A := new(big.Int).SetBytes(in.A)
	if A.Sign() <= 0 || A.Cmp(srpP) >= 0 {
		return errPasswordHashInvalid
	}
	ga := pad256(A)
	gbBytes := pad256(gb)
	u := new(big.Int).SetBytes(sha(ga, gbBytes))
	// S = (A * v^u)^b mod p
	vu := new(big.Int).Exp(p.v, u, srpP)
	S := vu.Mul(vu, A).Mod(vu, srpP)
	S.Exp(S, b, srpP)
	K := sha(pad256(S))
	hp := sha(srpP.Bytes())
	hg := sha(pad256(big.NewInt(srpG)))
	x := make([]byte, len(hp))
	for i := range hp {
		x[i] = hp[i] ^ hg[i]
	}
	m1 := sha(x, sha(p.salt1), sha(p.salt2), ga, gbBytes, K)
	if !bytesEqual(m1, in.M1) {
		return errPasswordHashInvalid
	}
	return nil
}

func bytesEqual(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := range a {
		d |= a[i] ^ b[i]
	}
	return d == 0
}
