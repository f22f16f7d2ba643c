package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Seed describes accounts, contacts, groups and channels to create at start.
//
//	users:
//	  - {phone: "9996610001", first_name: Alice, username: alice}
//	  - {phone: "9996620002", first_name: Bob, username: bob, password: secret}
//	contacts: [[alice, bob]]
//	groups:
//	  - {title: Friends, owner: alice, members: [bob]}
//	channels:
//	  - {title: News, username: news, owner: alice, members: [bob]}
//	  - {title: Chat, megagroup: true, owner: bob, members: [alice], slow_mode_seconds: 10}
//
// Accounts are referenced by username or phone.
type Seed struct {
	Users    []UserSpec    `yaml:"users"`
	Contacts [][2]string   `yaml:"contacts"`
	Groups   []SeedGroup   `yaml:"groups"`
	Channels []SeedChannel `yaml:"channels"`
}

// SeedGroup is a basic group in a seed.
type SeedGroup struct {
	Title   string   `yaml:"title"`
	Owner   string   `yaml:"owner"`
	Members []string `yaml:"members"`
}

// SeedChannel is a channel or supergroup in a seed.
type SeedChannel struct {
	ChannelSpec `yaml:",inline"`
	Owner       string   `yaml:"owner"`
	Members     []string `yaml:"members"`
}

// SeedResult maps seed references to created ids.
type SeedResult struct {
	Users    map[string]int64 // by username and by phone
	Groups   map[string]int64 // by title
	Channels map[string]int64 // by title
}

// LoadSeed reads a YAML seed file.
func LoadSeed(path string) (*Seed, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load seed %s: %w", path, err)
	}
	seed, err := ParseSeed(data)
	if err != nil {
		return nil, fmt.Errorf("load seed %s: %w", path, err)
	}
	return seed, nil
}

// ParseSeed parses a YAML seed, rejecting unknown fields.
func ParseSeed(data []byte) (*Seed, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var seed Seed
	if err := dec.Decode(&seed); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse seed: %w", err)
	}
	if err := seed.validate(); err != nil {
		return nil, err
	}
	return &seed, nil
}

func (sd *Seed) validate() error {
	refs := map[string]bool{}
	for i, u := range sd.Users {
		if normalizePhone(u.Phone) == "" {
			return fmt.Errorf("seed users[%d].phone: required", i)
		}
		if strings.TrimSpace(u.FirstName) == "" {
			return fmt.Errorf("seed users[%d].first_name: required", i)
		}
		refs[normalizePhone(u.Phone)] = true
		if u.Username != "" {
			refs[normalizeUsername(u.Username)] = true
		}
	}
	known := func(field, ref string) error {
		if !refs[normalizeRef(ref)] {
			return fmt.Errorf("seed %s: unknown user %q", field, ref)
		}
		return nil
	}
	for i, c := range sd.Contacts {
		for j, ref := range c {
			if err := known(fmt.Sprintf("contacts[%d][%d]", i, j), ref); err != nil {
				return err
			}
		}
	}
	for i, g := range sd.Groups {
		if strings.TrimSpace(g.Title) == "" {
			return fmt.Errorf("seed groups[%d].title: required", i)
		}
		if err := known(fmt.Sprintf("groups[%d].owner", i), g.Owner); err != nil {
			return err
		}
		for j, m := range g.Members {
			if err := known(fmt.Sprintf("groups[%d].members[%d]", i, j), m); err != nil {
				return err
			}
		}
	}
	for i, c := range sd.Channels {
		if strings.TrimSpace(c.Title) == "" {
			return fmt.Errorf("seed channels[%d].title: required", i)
		}
		if err := known(fmt.Sprintf("channels[%d].owner", i), c.Owner); err != nil {
			return err
		}
		for j, m := range c.Members {
			if err := known(fmt.Sprintf("channels[%d].members[%d]", i, j), m); err != nil {
				return err
			}
		}
	}
	return nil
}

func normalizeRef(ref string) string {
	if p := normalizePhone(ref); p != "" && len(p) == len(strings.TrimPrefix(strings.ReplaceAll(ref, " ", ""), "+")) {
		return p
	}
	return normalizeUsername(ref)
}

// ApplySeed creates everything the seed describes.
func (s *Server) ApplySeed(ctx context.Context, sd *Seed) error {
	_, err := s.ApplySeedResult(ctx, sd)
	return err
}

// ApplySeedResult is ApplySeed returning the ids it created.
func (s *Server) ApplySeedResult(ctx context.Context, sd *Seed) (*SeedResult, error) {
	if err := sd.validate(); err != nil {
		return nil, err
	}
	res := &SeedResult{Users: map[string]int64{}, Groups: map[string]int64{}, Channels: map[string]int64{}}
	for i, spec := range sd.Users {
		u, err := s.CreateUser(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("seed users[%d]: %w", i, err)
		}
		res.Users[u.Phone] = u.ID
		if u.Username != "" {
			res.Users[normalizeUsername(u.Username)] = u.ID
		}
	}
	id := func(ref string) int64 { return res.Users[normalizeRef(ref)] }
	for i, c := range sd.Contacts {
		if err := s.As(id(c[0])).AddContact(ctx, id(c[1])); err != nil {
			return nil, fmt.Errorf("seed contacts[%d]: %w", i, err)
		}
	}
	for i, g := range sd.Groups {
		var members []int64
		for _, m := range g.Members {
			members = append(members, id(m))
		}
		gid, err := s.CreateGroup(ctx, id(g.Owner), g.Title, members...)
		if err != nil {
			return nil, fmt.Errorf("seed groups[%d]: %w", i, err)
		}
		res.Groups[g.Title] = gid
	}
	for i, c := range sd.Channels {
		cid, err := s.CreateChannel(ctx, id(c.Owner), c.ChannelSpec)
		if err != nil {
			return nil, fmt.Errorf("seed channels[%d]: %w", i, err)
		}
		for j, m := range c.Members {
			if err := s.As(id(m)).Join(ctx, ChannelPeer(cid)); err != nil {
				return nil, fmt.Errorf("seed channels[%d].members[%d]: %w", i, j, err)
			}
		}
		res.Channels[c.Title] = cid
	}
	return res, nil
}

// DefaultSeed is what `runner sandbox serve` creates without --seed.
func DefaultSeed() *Seed {
	return &Seed{
		Users: []UserSpec{
			{Phone: "9996610001", FirstName: "Alice", Username: "alice"},
			{Phone: "9996620002", FirstName: "Bob", Username: "bob"},
			{Phone: "9996630003", FirstName: "Carol", Username: "carol"},
		},
		Contacts: [][2]string{{"alice", "bob"}, {"bob", "alice"}},
		Groups:   []SeedGroup{{Title: "Friends", Owner: "alice", Members: []string{"bob", "carol"}}},
		Channels: []SeedChannel{
			{ChannelSpec: ChannelSpec{Title: "Sandbox News", Username: "sandboxnews"}, Owner: "alice", Members: []string{"bob", "carol"}},
			{ChannelSpec: ChannelSpec{Title: "Sandbox Chat", Username: "sandboxchat", Megagroup: true}, Owner: "bob", Members: []string{"alice", "carol"}},
		},
	}
}
