"""The ladder tests run the ani family environment, as the model tests do."""

from tests.models.conftest import family_env  # noqa: F401 - the fixture
