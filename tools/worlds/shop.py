"""The shop world: a small catalogue with stock, a cart, and orders that ship standard or express.

Failures: an unknown product or order, asking for more than is in stock, ordering with an empty
cart, cancelling an order that has already shipped.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from chord_env.tools.worlds.base import Intent, NotFound, World, WorldError, choose, say, world_tool
from chord_env.tools.worlds.phrases import money
from chord_env.types import ToolCall

_PRODUCTS = (("desk lamp", 34.0), ("yoga mat", 25.5), ("water bottle", 12.0), ("backpack", 59.0),
             ("wireless mouse", 19.99), ("notebook", 4.5), ("coffee grinder", 42.0), ("umbrella", 15.0),
             ("headphones", 79.0), ("plant pot", 9.25), ("bike light", 22.0), ("phone stand", 11.0))
_SHIPPING = {"standard": 4.99, "express": 14.99}
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}


class Shop(World):
    name = "shop"

    @classmethod
    def random_state(cls, rng: np.random.Generator) -> dict:
        products = {}
        for i, (title, price) in enumerate(choose(rng, _PRODUCTS, k=8)):
            products[f"P{300 + i * 7}"] = {"name": title, "price": price, "stock": int(rng.integers(0, 6))}
        orders = {f"O-{5500 + i}": {"items": {}, "total": float(rng.integers(10, 90)), "status": s}
                  for i, s in enumerate(choose(rng, ("processing", "shipped", "delivered", "processing"), k=3))}
        return {"products": products, "cart": {}, "orders": orders, "next_order": 5600}

    def _product(self, product_id: str) -> dict:
        if product_id not in self.state["products"]:
            raise NotFound(f"no product with id {product_id!r}")
        return self.state["products"][product_id]

    def _order(self, order_id: str) -> dict:
        if order_id not in self.state["orders"]:
            raise NotFound(f"no order with id {order_id!r}")
        return self.state["orders"][order_id]

    @world_tool
    def search_products(self, query: str, max_price: float | None = None) -> list[dict]:
        """Search the catalogue by name.

        Args:
            query: Words to look for in product names.
            max_price: Only products at or under this price, in dollars.
        """
        words = query.lower().split()
        return [{"product_id": k, **p} for k, p in self.state["products"].items()
                if all(w in p["name"] for w in words) and (max_price is None or p["price"] <= max_price)]

    @world_tool
    def add_to_cart(self, product_id: str, quantity: int = 1) -> dict:
        """Put a product in the cart.

        Args:
            product_id: The product's id, from search_products.
            quantity: How many.
        """
        product = self._product(product_id)
        want = self.state["cart"].get(product_id, 0) + quantity
        if quantity < 1:
            raise WorldError(f"quantity must be at least 1, got {quantity}")
        if want > product["stock"]:
            raise WorldError(f"only {product['stock']} {product['name']} in stock")
        self.state["cart"][product_id] = want
        return {"cart": dict(self.state["cart"])}

    @world_tool
    def place_order(self, shipping: Literal["standard", "express"] = "standard") -> dict:
        """Order everything in the cart.

        Args:
            shipping: Delivery speed.
        """
        cart = self.state["cart"]
        if not cart:
            raise WorldError("the cart is empty")
        total = sum(self._product(k)["price"] * n for k, n in cart.items()) + _SHIPPING[shipping]
        for k, n in cart.items():
            self._product(k)["stock"] -= n
        order_id = f"O-{self.state['next_order']}"
        self.state["next_order"] += 1
        self.state["orders"][order_id] = {"items": dict(cart), "total": round(total, 2), "status": "processing"}
        self.state["cart"] = {}
        return {"order_id": order_id, "total": round(total, 2), "shipping": shipping}

    @world_tool
    def order_status(self, order_id: str) -> dict:
        """Where an order is.

        Args:
            order_id: The order's id, like O-1234.
        """
        return {"order_id": order_id, **self._order(order_id)}

    @world_tool
    def cancel_order(self, order_id: str) -> dict:
        """Cancel an order that has not shipped yet.

        Args:
            order_id: The order's id, like O-1234.
        """
        order = self._order(order_id)
        if order["status"] != "processing":
            raise WorldError(f"order {order_id} is {order['status']} and can no longer be cancelled")
        order["status"] = "cancelled"
        return {"order_id": order_id, "status": "cancelled"}


def _in_stock(state: dict) -> list[str]:
    return sorted(k for k, p in state["products"].items() if p["stock"] > 0)


def buy(rng: np.random.Generator, state: dict) -> Intent:
    product_id = choose(rng, _in_stock(state) or sorted(state["products"]))
    product = state["products"][product_id]
    quantity = int(rng.integers(1, product["stock"] + 1)) if product["stock"] else 1
    shipping = choose(rng, ("standard", "express"))
    stated = rng.random() < 0.5 or shipping == "express"
    count = _NUMBERS.get(quantity, str(quantity)) if rng.random() < 0.5 else str(quantity)
    ship_text = {"standard": " with normal shipping", "express": " and ship it express"}[shipping] if stated else ""
    request, wording = say(rng, "shop.buy", (
        "Order {n} {item}{ship}.", "I'd like to buy {n} of the {item}{ship}.", "Get me {n} x {item}{ship}, please.",
    ), n=count, item=product["name"], ship=ship_text)
    search = [ToolCall("search_products", {"query": product["name"]})]
    if product["stock"] == 0:
        return Intent(request, [search], f"Sorry, the {product['name']} is out of stock, so I couldn't order it.",
                      ["out of stock"], {f"prod:{product_id}", "cart"}, wording)
    total = round(product["price"] * quantity + _SHIPPING[shipping], 2)
    order = {"shipping": shipping} if stated else {}
    steps = [search, [ToolCall("add_to_cart", {"product_id": product_id, "quantity": quantity})],
             [ToolCall("place_order", order)]]
    answer = f"Ordered {quantity} x {product['name']} ({shipping} shipping); the total is ${money(total)}."
    return Intent(request, steps, answer, [total], {f"prod:{product_id}", "cart"}, wording)


def cheapest(rng: np.random.Generator, state: dict) -> Intent:
    budget = float(choose(rng, (10, 15, 20, 25, 40, 60)))
    matches = sorted((p["price"], p["name"]) for p in state["products"].values() if p["price"] <= budget)
    request, wording = say(rng, "shop.budget", (
        "What can I get for under ${b:g}?", "Show me everything that costs at most {b:g} dollars.",
        "Anything in the shop for {b:g} bucks or less?",
    ), b=budget)
    answer = ("You can get: " + ", ".join(f"{n} (${money(p)})" for p, n in matches) + ".") if matches else \
        f"Nothing in the shop costs ${money(budget)} or less."
    return Intent(request, [[ToolCall("search_products", {"query": "", "max_price": budget})]], answer,
                  [n for _, n in matches], {"catalogue"}, wording)


def status(rng: np.random.Generator, state: dict) -> Intent:
    order_id = choose(rng, sorted(state["orders"]))
    current = state["orders"][order_id]["status"]
    request, wording = say(rng, "shop.status", (
        "Where is my order {o}?", "Has order {o} shipped yet?", "Status of {o}, please.",
    ), o=order_id)
    return Intent(request, [[ToolCall("order_status", {"order_id": order_id})]], f"Order {order_id} is {current}.",
                  [current], {f"order:{order_id}"}, wording, "Where is my order?", "What's the order number?",
                  f"It's {order_id}.")


def cancel(rng: np.random.Generator, state: dict) -> Intent:
    order_id = choose(rng, sorted(state["orders"]))
    current = state["orders"][order_id]["status"]
    request, wording = say(rng, "shop.cancel", (
        "Cancel order {o}, if it hasn't shipped.", "Please check {o} and cancel it unless it's already on its way.",
    ), o=order_id)
    steps = [[ToolCall("order_status", {"order_id": order_id})]]
    if current == "processing":
        steps.append([ToolCall("cancel_order", {"order_id": order_id})])
        answer = f"Order {order_id} was still processing, so I cancelled it."
    else:
        answer = f"Order {order_id} is already {current}, so it can't be cancelled."
    return Intent(request, steps, answer, [order_id], {f"order:{order_id}"}, wording)


Shop.intents = (buy, cheapest, status, cancel)
Shop.off_topic = (
    ("Can you sell my old bike for me?", "I can only search this shop, fill your cart and manage your orders; listing items for sale isn't something I can do."),
    ("Which of these lamps has the best reviews on other sites?", "I have no access to reviews or other websites, only to this shop's catalogue, cart and orders."),
)
