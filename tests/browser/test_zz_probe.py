import pytest
from tests.browser.test_login_flows import *  # noqa: F403
from tests.browser import test_login_flows as t

pytestmark = pytest.mark.browser

@pytest.mark.parametrize("x", [1])
def test_probe(page, viewport, x):
    user = t.make_user()
    device = t.confirmed_device(user)
    t.enter_password(page, viewport, user.email)
    t.enter_code(page, t.wrong_code(device))
    t.expect_code_refused(page, viewport)
    t.enter_code(page, t.totp_code(device))
    t.expect_home(page, viewport, user)
