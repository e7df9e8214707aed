package plugins

import (
	"encoding/json"

	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// What the authentication plugins share: the headers naming the consumer
// upstream (kong/constants.lua HEADERS) and the anonymous fallback. Each
// handler sets every one of them, or clears it, so a client cannot send
// its own copies through an authenticated route.

const (
	hdrConsumerID       = "X-Consumer-ID"
	hdrConsumerCustomID = "X-Consumer-Custom-ID"
	hdrConsumerUsername = "X-Consumer-Username"
	hdrCredentialID     = "X-Credential-Identifier"
	hdrAnonymous        = "X-Anonymous-Consumer"
	hdrConsumerGroups   = "X-Consumer-Groups"

	msgUnexpected = "An unexpected error occurred"
)

// setConsumer is the handlers' set_consumer: authenticate the request and
// tell the upstream who it is; credIdent is X-Credential-Identifier (the
// credential's id, or its username for basic-auth and hmac-auth).
func setConsumer(x pdk.Exchange, c *pdk.Consumer, cred *pdk.Credential, credIdent string) {
	x.Authenticate(c, cred)
	setOrClear(x, hdrConsumerID, c != nil, func() string { return c.ID })
	setOrClear(x, hdrConsumerCustomID, c != nil && c.CustomID != "", func() string { return c.CustomID })
	setOrClear(x, hdrConsumerUsername, c != nil && c.Username != "", func() string { return c.Username })
	setOrClear(x, hdrCredentialID, cred != nil && credIdent != "", func() string { return credIdent })
	setOrClear(x, hdrAnonymous, cred == nil, func() string { return "true" })
}

func setOrClear(x pdk.Exchange, name string, set bool, value func() string) {
	if set {
		x.SetUpstreamHeader(name, value())
	} else {
		x.ClearUpstreamHeader(name)
	}
}

// authFailure is why authentication failed: Kong's status, message and
// WWW-Authenticate challenge.
type authFailure struct {
	status    int
	message   string
	challenge string
	// json answers with kong.response.exit's JSON body (errors when
	// set, else {"message": message}) instead of kong.response.error.
	json   bool
	errors map[string]any
}

// answer sends the failure to the client.
func (f authFailure) answer(x pdk.Exchange) {
	switch {
	case f.errors != nil:
		body, _ := json.Marshal(f.errors)
		x.Exit(f.status, body, "application/json; charset=utf-8")
	case f.json:
		exitMessage(x, f.status, f.message)
	default:
		x.Error(f.status, f.message)
	}
	if f.challenge != "" {
		x.SetResponseHeader("WWW-Authenticate", f.challenge)
	}
}

// authenticator is one plugin's do_authentication: true on success (the
// consumer set), or why not.
type authenticator func(x pdk.Exchange) (ok bool, fail authFailure)

// authenticate runs the handlers' access flow: with anonymous set, a
// request already authenticated by another plugin passes, and a failure
// falls back to the anonymous consumer ("logical OR"); without it a
// failure is answered ("logical AND").
func authenticate(x pdk.Exchange, ix *Index, anonymous string, do authenticator) {
	if anonymous != "" {
		if x.Credential() != nil {
			return
		}
		if ok, _ := do(x); !ok {
			c := ix.ConsumerByIDOrUsername(anonymous)
			if c == nil {
				// kong.client.authenticate(nil, nil) raises: Kong answers 500.
				x.Error(500, msgUnexpected)
				return
			}
			setConsumer(x, c, nil, "")
		}
		return
	}
	if ok, fail := do(x); !ok {
		fail.answer(x)
	}
}
