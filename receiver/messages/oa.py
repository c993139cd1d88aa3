"""The OA message (`msgtype: oa`): a coloured head, a form of the key labels, the text body,
and a status bar that the receiver later flips (已认领 · 张三, 已恢复). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from receiver.messages.filters import KEY_LABELS
from receiver.messages.links import more_url, web_url
from receiver.model import Notification

FIRING_BG = "FFE5533C"  # head colours: ARGB, as DingTalk writes them
RESOLVED_BG = "FF78C06E"
# status bar colours: 0xARGB
UNACKED_BAR = "0xFFF65E5E"
ACKED_BAR = "0xFF1677FF"
RESOLVED_BAR = "0xFF78C06E"
FORM_ROWS = 6


@dataclass(frozen=True)
class OaExtras:
    head: str
    head_bg: str
    form: tuple[tuple[str, str], ...]
    url: str
    status_value: str
    status_bg: str

    def msg(self, title: str, content: str) -> dict[str, Any]:
        oa: dict[str, Any] = {
            "head": {"bgcolor": self.head_bg, "text": self.head},
            "status_bar": {"status_value": self.status_value, "status_bg": self.status_bg},
            "body": {
                "title": title,
                "form": [{"key": f"{k}:", "value": v} for k, v in self.form],
                "content": content,
            },
        }
        if self.url:
            oa["message_url"] = oa["pc_message_url"] = self.url
        return {"msgtype": "oa", "oa": oa}


def oa_extras(n: Notification, words: dict[str, str], ack_url: str | None) -> OaExtras:
    """The head, form and status of `n`; tapping it opens the acknowledge page when there is one."""
    firing = n.status == "firing"
    labels = n.common_labels or (n.alerts[0].labels if n.alerts else {})
    keys = ("alertname", *KEY_LABELS)
    form = tuple((k, labels[k]) for k in keys if labels.get(k))[:FORM_ROWS]
    # only an http(s) URL is tapped: a payload's javascript: or data: URL never is
    found = [more_url(n), *(a.generator_url for a in n.alerts)]
    url = ack_url or next((u for u in map(web_url, found) if u), "")
    return OaExtras(
        head=words["firing"] if firing else words["resolved"],
        head_bg=FIRING_BG if firing else RESOLVED_BG,
        form=form,
        url=url,
        status_value=words["unacked"] if firing else words["resolved"],
        status_bg=UNACKED_BAR if firing else RESOLVED_BAR,
    )
