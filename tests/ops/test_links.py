"""{% link %} gives exactly what {% url %} / reverse() gives, whatever the arguments."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.urls import NoReverseMatch, clear_script_prefix, reverse, set_script_prefix
from django.utils.safestring import SafeString

from portal.ops.templatetags import links
from portal.ops.templatetags.links import reverse_cached

CASES = [
    ("accounts:home", ()),
    ("provider:chart", (7,)),
    ("provider:chart", (123456789,)),
    ("provider:record", ("condition", 0)),
    ("provider:record", (SafeString("clinicalnote"), 42)),
    ("provider:record_new", (5, "encounter")),
    ("provider:record", ("a b&ü", 3)),  # quoted as reverse quotes it
]


@pytest.mark.parametrize(("name", "args"), CASES)
def test_matches_reverse(name, args):
    assert reverse_cached(name, *args) == reverse(name, args=args)
    assert reverse_cached(name, *args) == reverse(name, args=args)  # from the cache


def test_other_arguments_go_to_reverse_every_time():
    before = len(links._SHAPES)
    with pytest.raises(NoReverseMatch):
        reverse_cached("provider:chart", -1)  # the int converter refuses negatives
    with pytest.raises(NoReverseMatch):
        reverse_cached("provider:chart", True)
    assert reverse_cached("provider:chart", "12") == reverse("provider:chart", args=["12"])
    assert len(links._SHAPES) <= before + 1  # only the string shape was remembered


def test_script_prefix_is_part_of_the_shape():
    plain = reverse_cached("provider:chart", 9)
    set_script_prefix("/portal/")
    try:
        assert reverse_cached("provider:chart", 9) == "/portal" + plain
    finally:
        clear_script_prefix()
        set_script_prefix("/")
    assert reverse_cached("provider:chart", 9) == plain


def test_the_tag_escapes_like_url():
    html = Template("{% load links %}<a href=\"{% link 'provider:record' kind 3 %}\">").render(
        Context({"kind": "x&y"})
    )
    expected = Template("<a href=\"{% url 'provider:record' kind 3 %}\">").render(
        Context({"kind": "x&y"})
    )
    assert html == expected
