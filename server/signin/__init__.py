"""People who sign in: accounts (participants and operators), one-time links sent by
email, cookie sessions and CSRF tokens. OpenID Connect single sign-on is not built yet."""
