"""The bank world: a customer's checking and savings accounts, payees, transfers and a card.

Amounts are numbers in dollars; the user writes "$1.2k", "USD 75.50", "300 dollars". Failures: an
unknown account or payee, a non-positive amount, insufficient funds, a card that is already frozen.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from chord_env.tools.worlds.base import Intent, NotFound, World, WorldError, choose, say, world_tool
from chord_env.tools.worlds.phrases import money, spoken_money
from chord_env.types import ToolCall

Account = Literal["checking", "savings"]
_PAYEES = ("City Water", "Northwind Power", "Skyline Internet", "Maple Street Rent", "Harbor Insurance", "Metro Gym")


class Bank(World):
    name = "bank"

    @classmethod
    def random_state(cls, rng: np.random.Generator) -> dict:
        return {
            "balances": {"checking": float(rng.integers(200, 3000)), "savings": float(rng.integers(1000, 20000))},
            "payees": sorted(choose(rng, _PAYEES, k=4)),
            "history": [],
            "card": {"last4": f"{int(rng.integers(1000, 10000))}", "frozen": False},
        }

    def _account(self, account: str) -> float:
        if account not in self.state["balances"]:
            raise NotFound(f"no account {account!r}; accounts: checking, savings")
        return self.state["balances"][account]

    def _debit(self, account: str, amount: float, what: str) -> None:
        if amount <= 0:
            raise WorldError(f"amount must be positive, got {amount}")
        if self._account(account) < amount:
            raise WorldError(f"insufficient funds: {account} has {money(self._account(account))}, needs {money(amount)}")
        self.state["balances"][account] = round(self.state["balances"][account] - amount, 2)
        self.state["history"].append({"account": account, "amount": -amount, "what": what})

    @world_tool
    def get_balance(self, account: Account) -> dict:
        """The current balance of one account, in dollars.

        Args:
            account: Which account.
        """
        return {"account": account, "balance": self._account(account)}

    @world_tool
    def transfer_funds(self, from_account: Account, to_account: Account, amount: float, memo: str | None = None) -> dict:
        """Move money between the customer's own accounts.

        Args:
            from_account: Account to take the money from.
            to_account: Account to put it in.
            amount: Dollars to move.
            memo: An optional note for the statement.
        """
        if from_account == to_account:
            raise WorldError("from_account and to_account must differ")
        self._debit(from_account, amount, f"transfer to {to_account}" + (f" ({memo})" if memo else ""))
        self.state["balances"][to_account] = round(self._account(to_account) + amount, 2)
        self.state["history"].append({"account": to_account, "amount": amount, "what": f"transfer from {from_account}"})
        return {"status": "done", "balances": dict(self.state["balances"])}

    @world_tool
    def pay_bill(self, payee: str, amount: float, account: Account = "checking") -> dict:
        """Pay a saved payee.

        Args:
            payee: The payee's name, exactly as saved.
            amount: Dollars to pay.
            account: Account to pay from.
        """
        if payee not in self.state["payees"]:
            raise NotFound(f"no saved payee {payee!r}; saved payees: {', '.join(self.state['payees'])}")
        self._debit(account, amount, f"bill: {payee}")
        return {"status": "paid", "payee": payee, "amount": amount, "balance": self.state["balances"][account]}

    @world_tool
    def list_payees(self) -> list[str]:
        """The customer's saved payees."""
        return list(self.state["payees"])

    @world_tool
    def freeze_card(self, last4: str) -> dict:
        """Freeze the debit card so no new payments go through.

        Args:
            last4: The last four digits of the card number.
        """
        card = self.state["card"]
        if last4 != card["last4"]:
            raise NotFound(f"no card ending in {last4}")
        if card["frozen"]:
            raise WorldError(f"the card ending in {last4} is already frozen")
        card["frozen"] = True
        return {"card": last4, "status": "frozen"}


def balance(rng: np.random.Generator, state: dict) -> Intent:
    account = choose(rng, ("checking", "savings"))
    request, wording = say(rng, "bank.balance", (
        "How much is in my {a} account?", "What's my {a} balance?", "Check the balance on my {a}, please.",
        "Tell me how much money I have in {a}.",
    ), a=account)
    value = state["balances"][account]
    return Intent(request, [[ToolCall("get_balance", {"account": account})]],
                  f"Your {account} balance is ${money(value)}.", [value], {f"acct:{account}"}, wording)


def transfer(rng: np.random.Generator, state: dict) -> Intent:
    src, dst = choose(rng, ("checking", "savings"), k=2)
    amount = float(rng.integers(1, max(2, int(state["balances"][src] * 0.5))) // 5 * 5 + 5)
    args = {"from_account": src, "to_account": dst, "amount": amount}
    memo = ""
    if rng.random() < 0.4:
        args["memo"] = choose(rng, ("rent", "vacation fund", "emergency buffer", "tuition"))
        memo = f" and label it '{args['memo']}'"
    spoken = spoken_money(rng, amount)
    request, wording = say(rng, "bank.transfer", (
        "Move {m} from {src} to {dst}{memo}.", "Please transfer {m} from my {src} account into {dst}{memo}.",
        "Can you shift {m} over from {src} to {dst}{memo}?",
    ), m=spoken, src=src, dst=dst, memo=memo)
    vague, _ = say(rng, "bank.transfer.vague", (
        "Move some money from {src} to {dst}{memo}.", "I want to transfer from my {src} account into {dst}{memo}.",
    ), src=src, dst=dst, memo=memo)
    after = round(state["balances"][src] - amount, 2)
    answer = f"Transferred ${money(amount)} from {src} to {dst}. {src.capitalize()} now holds ${money(after)}."
    return Intent(request, [[ToolCall("transfer_funds", args)]], answer, [after], {"acct:checking", "acct:savings"},
                  wording, vague, "How much would you like to transfer?", f"{spoken}, please.")


def pay(rng: np.random.Generator, state: dict) -> Intent:
    payee = choose(rng, state["payees"])
    amount = round(float(rng.integers(2000, min(20000, int(state["balances"]["checking"] * 100)))) / 100, 2)
    spoken = spoken_money(rng, amount)
    request, wording = say(rng, "bank.pay", (
        "Pay {m} to {p}.", "Please pay my {p} bill, it's {m}.", "Send {p} their {m}.",
    ), m=spoken, p=payee)
    after = round(state["balances"]["checking"] - amount, 2)
    return Intent(request, [[ToolCall("pay_bill", {"payee": payee, "amount": amount})]],
                  f"Paid ${money(amount)} to {payee}; checking is now ${money(after)}.", [after],
                  {"acct:checking"}, wording, f"Please pay my {payee} bill.",
                  "How much is the bill?", f"It's {spoken}.")


def top_up(rng: np.random.Generator, state: dict) -> Intent:
    need = float(state["balances"]["checking"] + rng.integers(50, 500))
    spoken = spoken_money(rng, need)
    request, wording = say(rng, "bank.topup", (
        "I need {m} in checking for rent. Move just enough from savings to cover it.",
        "Make sure checking has {m}: top it up from savings with exactly what's missing.",
    ), m=spoken)
    gap = round(need - state["balances"]["checking"], 2)
    steps = [[ToolCall("get_balance", {"account": "checking"})],
             [ToolCall("transfer_funds", {"from_account": "savings", "to_account": "checking", "amount": gap})]]
    return Intent(request, steps, f"Checking was short by ${money(gap)}; I moved that from savings, so it now holds ${money(need)}.",
                  [gap], {"acct:checking", "acct:savings"}, wording)


def freeze(rng: np.random.Generator, state: dict) -> Intent:
    last4 = state["card"]["last4"]
    request, wording = say(rng, "bank.freeze", (
        "I lost my card ending {d}. Freeze it now!", "Please block my debit card, last four digits {d}.",
        "Freeze card {d}, I think it was stolen.",
    ), d=last4)
    return Intent(request, [[ToolCall("freeze_card", {"last4": last4})]], f"Your card ending in {last4} is frozen.",
                  [last4], {"card"}, wording, "Please freeze my debit card, I lost it.",
                  "What are the last four digits of the card?", f"It ends in {last4}.")


Bank.intents = (balance, transfer, pay, top_up, freeze)
Bank.off_topic = (
    ("Should I buy shares of a tech company right now?", "I can't give investment advice, and I have no trading tools: I can only check balances, move money between your accounts, pay saved payees and freeze your card."),
    ("Open a new credit card for me.", "Opening new products isn't something my tools can do; I can check balances, transfer between your accounts, pay saved payees or freeze your card."),
    ("Send $50 to my friend Jo's account at another bank.", "I can only move money between your own checking and savings accounts or pay saved payees, so I can't send money to Jo."),
)
