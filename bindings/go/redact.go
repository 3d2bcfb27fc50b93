package mcpoauth

import (
	"fmt"
	"net/url"
	"strings"
)

// The configuration types hold secrets (client secrets, private keys, ID
// tokens, encryption keys): printed with %v, %+v or %#v they show each
// secret as [redacted], so that logging a configuration leaks nothing.

const redacted = "[redacted]"

func redact(s *string) {
	if *s != "" {
		*s = redacted
	}
}

// String describes the options without their secrets.
func (o Options) String() string {
	type plain Options // the same fields, without these methods
	p := plain(o)
	redact(&p.ClientSecret)
	redact(&p.PrivateKeyPEM)
	redact(&p.DPoPKeyPEM)
	redact(&p.WorkloadJWT)
	return fmt.Sprintf("mcpoauth.Options%+v", p)
}

// GoString is String, for %#v.
func (o Options) GoString() string { return o.String() }

// String describes the settings without the IdP's client secret and the ID token.
func (a IdentityAssertion) String() string {
	type plain IdentityAssertion
	p := plain(a)
	redact(&p.IdPClientSecret)
	redact(&p.IDToken)
	return fmt.Sprintf("mcpoauth.IdentityAssertion%+v", p)
}

// GoString is String, for %#v.
func (a IdentityAssertion) GoString() string { return a.String() }

// String describes the store without its encryption keys and the URL's password.
func (r RedisStore) String() string {
	type plain RedisStore
	p := plain(r)
	p.URL = redactURLPassword(p.URL)
	return fmt.Sprintf("mcpoauth.RedisStore%+v", p)
}

// GoString is String, for %#v.
func (r RedisStore) GoString() string { return r.String() }

// String names the key by its id only.
func (k EncryptionKey) String() string { return fmt.Sprintf("{ID:%s Key:%s}", k.ID, redacted) }

// GoString is String, for %#v.
func (k EncryptionKey) GoString() string { return k.String() }

// redactURLPassword hides the password of each comma-separated URL.
func redactURLPassword(urls string) string {
	out := ""
	for i, part := range strings.Split(urls, ",") {
		if i > 0 {
			out += ","
		}
		if u, err := url.Parse(part); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
				out += u.String()
				continue
			}
		}
		out += part
	}
	return out
}
