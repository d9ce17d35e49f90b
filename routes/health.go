package routes

import (
	"github.com/gofiber/fiber/v2"
)

// root answers GET / as the original did.
func root(projectName string) fiber.Handler {
	body := fiber.Map{"message": projectName + " is running!"}
	return func(c *fiber.Ctx) error {
		return c.JSON(body)
	}
}

// health answers GET /health for load balancers and probes. It does not
// call the ingest service: an upstream outage must not take every gateway
// replica out of rotation. It answers 503 while the gateway cannot serve,
// for instance once shutdown has begun.
func health(projectName string, problem func() string) fiber.Handler {
	healthy := fiber.Map{"status": "healthy", "service": projectName}
	return func(c *fiber.Ctx) error {
		if detail := problem(); detail != "" {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
				"status": "unhealthy", "service": projectName, "detail": detail,
			})
		}
		return c.JSON(healthy)
	}
}
