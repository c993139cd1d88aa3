"""The built-in templates: what a message falls back to when a template fails.

Deliberately plain, and kept in code so that a broken or missing templates/ folder
cannot break them. The richer defaults users edit live in templates/.
"""

from __future__ import annotations

_MARKDOWN = """\
### {{ title | md }}

{% for a in alerts %}
**{{ t[a.status] }}** {{ a.labels.alertname | md }}

{{ (a.annotations.summary or a.annotations.description or "") | md }}

{{ a.labels | join_labels(keyLabels) | md }}

{{ t.started }}: {{ a.startsAt | localtime }}

{% endfor %}
"""

_TEXT = """\
{{ title | oneline }}
{% for a in alerts %}

{{ t[a.status] }}: {{ a.labels.alertname | oneline }}
{{ (a.annotations.summary or a.annotations.description or "") | oneline }}
{{ a.labels | join_labels(keyLabels) | oneline }}
{{ t.started }}: {{ a.startsAt | localtime }}
{% endfor %}
"""

BUILTIN_TEMPLATES = {"markdown": _MARKDOWN, "action_card": _MARKDOWN, "text": _TEXT}
