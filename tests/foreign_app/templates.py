"""A host application's own module named `templates`, beside printroom's templates."""

SIGNATURE = "the shop-app team"
