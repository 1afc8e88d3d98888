"""People who sign in: accounts (participants and operators), one-time links sent by
email, cookie sessions, CSRF tokens and optional OpenID Connect single sign-on."""
