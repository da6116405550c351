package imap

import "github.com/emersion/go-sasl"

// xoauth2 is the SASL XOAUTH2 mechanism of Google and Microsoft, which
// go-sasl does not ship (it has the standard OAUTHBEARER, which those
// servers do not all accept). The initial response carries everything;
// on failure the server sends a JSON challenge, answered with an empty
// response so that it then fails the command with its real error.
type xoauth2 struct{ username, token string }

var _ sasl.Client = (*xoauth2)(nil)

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.username + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2) Next([]byte) ([]byte, error) { return []byte{}, nil }
