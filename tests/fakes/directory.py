"""A small company for the fake DingTalk's directory.

1 (root)          boss
├── 2 Engineering alice (also in 5)
│   └── 4 DBA     lisi-a, carol
├── 3 Ops         bob
│   └── 5 SRE     alice, lisi-b
└── 6 Support     250 people: more than two pages of 100
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.dingtalk import Directory

SUPPORT_SIZE = 250


def person(userid: str, name: str, depts: list[int], **extra: Any) -> dict[str, Any]:
    return {"userid": userid, "name": name, "dept_id_list": depts, "active": True, **extra}


ALICE = person(
    "manager4220", "张三", [2, 5], mobile="13800000001", email="Alice@Example.com", title="DBA lead"
)
BOB = person("user0002", "Bob", [3], mobile="13900000002", email="bob@example.com")
CAROL = person(
    "user0003", "Carol", [4], mobile="4155550100", state_code="1", org_email="carol@corp.example"
)
LISI_A = person("user0004", "李四", [4], mobile="13700000004")
LISI_B = person("user0005", "李四", [5], mobile="13700000005", active=False)
BOSS = person("boss", "Boss", [1], mobile="13600000000", email="boss@example.com")


def support(i: int) -> dict[str, Any]:
    return person(f"sup{i:04d}", f"Support {i:04d}", [6], mobile=f"1350000{i:04d}")


def company() -> Directory:
    """A fresh copy each time: tests may edit it."""
    return copy.deepcopy(_company())


def _company() -> Directory:
    return Directory(
        departments={
            2: {"name": "Engineering", "parent_id": 1},
            3: {"name": "Ops", "parent_id": 1},
            4: {"name": "DBA", "parent_id": 2},
            5: {"name": "SRE", "parent_id": 3},
            6: {"name": "Support", "parent_id": 1},
        },
        members={
            1: [BOSS],
            2: [ALICE],
            3: [BOB],
            4: [LISI_A, CAROL],
            5: [ALICE, LISI_B],
            6: [support(i) for i in range(SUPPORT_SIZE)],
        },
    )


TOTAL_USERS = 6 + SUPPORT_SIZE  # alice counted once
