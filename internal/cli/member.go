package cli

import "github.com/spf13/cobra"

func newMemberCmd(_ *env) *cobra.Command {
	return &cobra.Command{Use: "member", Short: "(under construction)", Hidden: true}
}
